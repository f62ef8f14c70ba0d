"""A safe arithmetic evaluator: Python's AST, a whitelist of node types, never ``eval``.

Numbers, + - * / // % **, unary minus, parentheses. Names, attributes, calls, subscripts and
everything else are rejected with a reason, in English and in Chinese (a :class:`CalculatorError` is an
:class:`~puyu_lab.errors.InputError`: ``err.en`` is what the agent's model reads, ``err.zh`` what a learner reading
Chinese sees); exponents and results are bounded, so ``10**10**10`` is refused instead of freezing the kernel.
"""
from __future__ import annotations

import ast
import math
import operator
from fractions import Fraction

from ..errors import InputError

MAX_EXPONENT = 64
MAX_DIGITS = 60
MAX_LENGTH = 200

_BIN = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}


class CalculatorError(InputError):
    """An expression the calculator refuses, and why."""


# what the calculator refuses, by AST node: (English, Chinese)
_REFUSED = {ast.Name: ("names", "变量名"), ast.Attribute: ("attributes", "属性"),
            ast.Call: ("function calls", "函数调用"), ast.Subscript: ("subscripts", "下标")}


def _check_size(x):
    if isinstance(x, Fraction):
        if len(str(abs(x.numerator))) > MAX_DIGITS or len(str(x.denominator)) > MAX_DIGITS:
            raise CalculatorError(f"the result has more than {MAX_DIGITS} digits", zh=f"结果超过了 {MAX_DIGITS} 位数字")
    elif isinstance(x, float) and not math.isfinite(x):
        raise CalculatorError("the result is not a finite number", zh="结果不是有限的数")
    return x


def _eval(node):
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return Fraction(node.value) if isinstance(node.value, int) else node.value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _check_size(_UNARY[type(node.op)](_eval(node.operand)))
    if isinstance(node, ast.BinOp) and type(node.op) in _BIN:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            if isinstance(right, Fraction) and right.denominator != 1:
                raise CalculatorError("only whole-number exponents are supported", zh="指数只能是整数")
            if abs(right) > MAX_EXPONENT:
                raise CalculatorError(f"exponent {right} is larger than {MAX_EXPONENT}",
                                      zh=f"指数 {right} 超过了上限 {MAX_EXPONENT}")
        if isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod)) and right == 0:
            raise CalculatorError("division by zero", zh="除数不能为零")
        if isinstance(left, float) or isinstance(right, float):
            left, right = float(left), float(right)
        return _check_size(_BIN[type(node.op)](left, right))
    what, what_zh = _REFUSED.get(type(node), (type(node).__name__, type(node).__name__))
    raise CalculatorError(f"{what} are not allowed: only numbers and + - * / // % ** ( )",
                          zh=f"不允许使用{what_zh}：只能用数字和 + - * / // % ** ( )")


def calculate(expression: str) -> int | float:
    """The value of an arithmetic expression (an int when it is whole, else a float)."""
    if not isinstance(expression, str) or not expression.strip():
        raise CalculatorError("give an arithmetic expression as a string, e.g. '12*(3+4)'",
                              zh="请用字符串给出一个算术表达式，例如 '12*(3+4)'")
    if len(expression) > MAX_LENGTH:
        raise CalculatorError(f"the expression is longer than {MAX_LENGTH} characters",
                              zh=f"表达式超过了 {MAX_LENGTH} 个字符")
    expr = expression.replace("×", "*").replace("÷", "/").replace("^", "**")
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError as e:
        raise CalculatorError(f"not a valid expression: {e.msg}", zh=f"不是合法的表达式：{e.msg}") from None
    v = _eval(tree)
    if isinstance(v, Fraction):
        return int(v) if v.denominator == 1 else round(float(v), 6)
    return round(v, 6)


CALCULATOR_DESCRIPTION = "计算算术表达式 (+ - * / 和括号)"


def _nested(depth: int) -> str:
    # numbers as Python reads them (no leading zeros: `012` is a syntax error the calculator refuses),
    # at most 9 digits and 6 decimals; at most 6 terms at each level: a finite language, so a call
    # always has a way to close
    number, op = r"(0|[1-9][0-9]{0,8})(\.[0-9]{1,6})?", "[-+*/]"
    atom = number if depth == 0 else f"({number}|\\({_nested(depth - 1)}\\))"
    return f"-?{atom}({op}-?{atom}){{0,5}}"


# what constrained decoding lets a call's expression be (the description's + - * / and brackets,
# nested up to three deep, no spaces, as the fine-tune data writes them): a regex, as JSON schemas
# write one. It is not shown to the model — every prompt token counts on the quick model.
EXPRESSION_PATTERN = _nested(2)
CALCULATOR_SCHEMA = {
    "name": "calculator",
    "description": CALCULATOR_DESCRIPTION,
    "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]},
}
