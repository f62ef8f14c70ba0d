"""A safe arithmetic evaluator: Python's AST, a whitelist of node types, never ``eval``.

Numbers, + - * / // % **, unary minus, parentheses. Names, attributes, calls, subscripts and
everything else are rejected with a reason; exponents and results are bounded, so ``10**10**10``
is refused instead of freezing the kernel.
"""
from __future__ import annotations

import ast
import math
import operator
from fractions import Fraction

MAX_EXPONENT = 64
MAX_DIGITS = 60
MAX_LENGTH = 200

_BIN = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}


class CalculatorError(ValueError):
    pass


def _check_size(x):
    if isinstance(x, Fraction):
        if len(str(abs(x.numerator))) > MAX_DIGITS or len(str(x.denominator)) > MAX_DIGITS:
            raise CalculatorError(f"the result has more than {MAX_DIGITS} digits")
    elif isinstance(x, float) and not math.isfinite(x):
        raise CalculatorError("the result is not a finite number")
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
                raise CalculatorError("only whole-number exponents are supported")
            if abs(right) > MAX_EXPONENT:
                raise CalculatorError(f"exponent {right} is larger than {MAX_EXPONENT}")
        if isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod)) and right == 0:
            raise CalculatorError("division by zero")
        if isinstance(left, float) or isinstance(right, float):
            left, right = float(left), float(right)
        return _check_size(_BIN[type(node.op)](left, right))
    what = {ast.Name: "names", ast.Attribute: "attributes", ast.Call: "function calls",
            ast.Subscript: "subscripts"}.get(type(node), type(node).__name__)
    raise CalculatorError(f"{what} are not allowed: only numbers and + - * / // % ** ( )")


def calculate(expression: str) -> int | float:
    """The value of an arithmetic expression (an int when it is whole, else a float)."""
    if not isinstance(expression, str) or not expression.strip():
        raise CalculatorError("give an arithmetic expression as a string, e.g. '12*(3+4)'")
    if len(expression) > MAX_LENGTH:
        raise CalculatorError(f"the expression is longer than {MAX_LENGTH} characters")
    expr = expression.replace("×", "*").replace("÷", "/").replace("^", "**")
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError as e:
        raise CalculatorError(f"not a valid expression: {e.msg}") from None
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
