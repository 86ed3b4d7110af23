"""The pages' words (pure): every text in both languages, every risk type labelled, the language
chosen from ?lang= then Accept-Language, Chinese by default."""
from contracts.vocabulary import RiskType
from services.notifier.pages_text import LANGUAGES, RISK_LABELS, TEXT, choose_language, risk_labels


def test_every_text_and_risk_type_is_in_both_languages():
    assert all(set(words) == set(LANGUAGES) and all(words.values()) for words in (*TEXT.values(), *RISK_LABELS.values()))
    assert list(risk_labels("zh")) == [risk.value for risk in RiskType]


def test_the_language_comes_from_the_query_then_accept_language_and_is_chinese_by_default():
    assert choose_language(None, None) == "zh"
    assert choose_language("en", "zh-CN") == "en"
    assert choose_language("fr", "en-GB,en;q=0.9") == "en"
    assert choose_language(None, "fr-FR, zh-CN;q=0.5, en;q=0.4") == "zh"
    assert choose_language(None, "zh;q=0.3, en-US;q=0.8") == "en"
    assert choose_language(None, "en;q=0") == "zh"
