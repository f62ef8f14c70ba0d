"""Each rule against hand-made documents of known verdict, in English and Chinese."""
import pandas as pd
import pytest

from puyu_lab.data.filters import RULES, Recipe, apply, filter_mask
from puyu_lab.data.signals import doc_signals

GOOD_EN = """The history of the printing press is one of the most studied topics in the story of Europe.
Before the press, books were copied by hand, and a single copy could take a scribe many months to finish.
When Gutenberg began to print with movable type in the middle of the fifteenth century, the price of books fell.
Within fifty years, printers were at work in more than two hundred cities, and millions of books had been made.
Historians argue that the press helped to spread new ideas about science, religion and government.
It also changed how people learned to read, because more of them could own a book of their own.
"""

GOOD_ZH = """北京的冬天很冷，但是人们的生活依然丰富多彩。每到周末，很多家庭都会去公园散步，或者去博物馆参观。
孩子们在冰面上滑冰，老人们在湖边下棋，年轻人则喜欢在咖啡馆里读书和聊天。
这座城市有着悠久的历史，也有着现代化的面貌，吸引了来自世界各地的游客。"""


def reason_of(text: str, recipe: Recipe | None = None, only: str | None = None) -> str:
    """The first failing rule; with ``only``, just that rule group (and language ID) is on."""
    recipe = recipe or Recipe()
    if only:
        recipe.groups = {g: g in (only, "language") for g in recipe.groups}
    sig = pd.DataFrame([doc_signals(text)])
    keep, reason, _ = filter_mask(sig, recipe)
    return reason[0]


def test_good_documents_pass():
    assert doc_signals(GOOD_EN)["lang"] == "en"
    assert doc_signals(GOOD_ZH)["lang"] == "zh"
    assert reason_of(GOOD_EN) == ""
    assert reason_of(GOOD_ZH) == ""


@pytest.mark.parametrize("text, group, reason", [
    # Gopher quality
    ("The cat sat on the mat and looked at the bird.", "gopher_quality", "gopher_short_doc"),
    (GOOD_EN + " ".join(f"#tag{i}" for i in range(60)) + ".", "gopher_quality", "gopher_too_many_hashes"),
    ("\n".join(f"- the item number {i} of the list that has to be bought and to be taken home" for i in range(12)),
     "gopher_quality", "gopher_too_many_bullets"),
    ("\n".join(f"and then the story of the {w} went on and on and on with no end in sight..." for w in
               ["king", "queen", "prince", "knight", "horse", "dragon", "castle", "village", "forest", "river"]),
     "gopher_quality", "gopher_too_many_end_ellipsis"),
    ("The results of the survey are shown in the table below, with the number of the farms and the yield.\n"
     + "\n".join(f"Farm {i}: {i*37} tons, {i*13} acres, {i*7}% wheat, {i*3}% corn, ${i*1000}." for i in range(1, 25)),
     "gopher_quality", "gopher_below_alpha_threshold"),
    (" ".join(["Quick brown foxes jump over lazy dogs while cats sleep"] * 3) + " " +
     "Engineers design bridges using steel cables anchored deep inside rocky cliffs near rivers. "
     "Farmers harvest wheat during autumn months before heavy rains arrive across northern plains. "
     "Children build sandcastles near oceans whenever summer holidays begin.", "gopher_quality", "gopher_enough_stop_words"),
    # Gopher repetition
    ("\n".join(["This line is the same line that we repeat again and again in the text."] * 6 +
               [GOOD_EN]), "gopher_repetition", "dup_line_frac"),
    (GOOD_EN + " " + " ".join(["of the"] * 80), "gopher_repetition", "top_2_gram"),
    # FineWeb
    ("\n".join(f"Section {i} about the history of the town and the people who lived in it long ago"
               for i in range(12)), "fineweb", "line_punct_ratio"),
    # C4
    (GOOD_EN + "Lorem ipsum dolor sit amet, consectetur adipiscing elit, and the rest of it.\n", "c4", "lorem_ipsum"),
    (GOOD_EN + "In code you write a block as { x = 1 } and it is a dict in the Python language.\n", "c4", "curly_bracket"),
])
def test_english_rules(text, group, reason):
    assert doc_signals(text)["lang"] == "en"
    assert reason_of(text, only=group) == reason


@pytest.mark.parametrize("text, group, reason", [
    ("今天天气很好。", "gopher_quality", "gopher_short_doc"),
    ("这个东西真的真的真的真的真的真的真的真的真的真的真的真的真的真的好用！", "gopher_repetition", "top_2_gram"),
    ("\n".join(["这家店的服务态度非常好，菜也很好吃，下次还会再来。"] * 4 + [GOOD_ZH]), "gopher_repetition", "dup_line_frac"),
    ("华为手机屏幕清晰运行流畅电池耐用拍照效果出色外观设计时尚价格合理物流迅速包装完好客服热情推荐购买！",
     "gopher_quality", "gopher_enough_stop_words"),
    ("\n".join(["第一章 北京的历史", "第二章 上海的发展", "第三章 广州的美食", "第四章 西安的古迹"]), "fineweb", "line_punct_ratio"),
])
def test_chinese_rules(text, group, reason):
    assert doc_signals(text)["lang"] == "zh"
    assert reason_of(text, only=group) == reason


def test_chinese_variants_differ_from_english_defaults():
    # A short Chinese review passes with the Chinese minimum (15 characters) …
    review = "这本书写得很好，我非常喜欢，推荐给大家阅读。"
    assert reason_of(review, only="gopher_quality") == ""
    # … and fails if the English minimum (50 words) were applied to its characters.
    r = Recipe()
    r.set("gopher_short_doc", 50, "zh")
    assert reason_of(review, r, only="gopher_quality") == "gopher_short_doc"
    # The word-length rules are off for Chinese: every word is one character.
    assert Recipe().threshold("gopher_below_avg_threshold", "zh") is None


def test_language_rule_and_toggles():
    assert reason_of("Le chat est assis sur le tapis et regarde les oiseaux dans le jardin tous les jours.") == "language"
    r = Recipe()
    r.groups = dict.fromkeys(r.groups, False)
    assert reason_of("Le chat est assis sur le tapis et regarde les oiseaux.", r) == ""
    r = Recipe()
    r.c4_curly_bracket = False
    assert reason_of(GOOD_EN + "In code you write a block as { x = 1 } and it is a dict in the Python language.\n", r) == ""


def test_rules_sharing_a_datatrove_parameter_move_together():
    r = Recipe()
    r.set("gopher_too_many_ellipsis", 0.25, "en")  # both are datatrove's max_symbol_word_ratio
    assert r.threshold("gopher_too_many_hashes", "en") == 0.25
    assert r.threshold("gopher_too_many_hashes", "zh") == 0.1
    r.set("top_2_gram", 0.5)
    assert r.threshold("top_3_gram", "en") == 0.18, "distinct parameters stay independent"


def test_threshold_moves_verdict():
    text = GOOD_EN + " " + " ".join(["of the"] * 80)
    r = Recipe()
    r.set("top_2_gram", 0.9)
    assert reason_of(text, r) != "top_2_gram"


def test_every_rule_is_in_the_recipe_and_named_uniquely():
    names = [r.name for r in RULES]
    assert len(names) == len(set(names))
    rec = Recipe()
    assert set(rec.thresholds) == set(names)
    assert Recipe.from_dict(rec.to_dict()) == rec
    with pytest.raises(KeyError):
        rec.set("no_such_rule", 1)


def test_dedup_in_apply_keeps_first_of_each_group():
    sig = pd.DataFrame([doc_signals(t) for t in [GOOD_EN, GOOD_EN, GOOD_ZH, GOOD_ZH + "。"]])
    v = apply(sig, Recipe(), exact_key=[1, 1, 2, 3], cluster=[0, 0, 2, 2])
    assert list(v.keep) == [True, False, True, False]
    assert list(v.reason) == ["", "exact_duplicate", "", "near_duplicate"]
    assert v.funnel.documents.tolist()[-3:] == [4, 3, 2]
