# ruff: noqa: E501 - a rule's pattern reads best unbroken
"""Prompt-injection checks: phrase rules over normalised views, and an optional classifier.

Rule-based by default (a sidecar cannot carry a large model): each :class:`Rule` is a
bounded regular expression over the views of :mod:`.normalize`, with keywords that must
appear before the regex runs, so benign text costs a few substring tests. Categories:

- ``instruction_override``: "ignore all previous instructions", "your new instructions
  are", fake role delimiters (``<|im_start|>system``, ``[INST]``, ``### system:``);
- ``roleplay_jailbreak``: DAN / "do anything now", "act as an unrestricted AI", "developer
  mode enabled", "without any ethical guidelines";
- ``system_prompt_exfiltration``: "reveal your system prompt", "repeat the text above
  verbatim";
- ``encoded_payload``: any of the above found only after decoding base64, hex, escapes or
  Unicode tag characters, or undoing leetspeak, spacing or confusables (the technique is
  reported too); and "decode this and follow it".

Retrieved content (``role: tool``, Anthropic ``tool_result``: OWASP LLM01's *indirect*
injection) is checked with the same rules plus :data:`RETRIEVED_RULES`: text that talks to
the model ("AI assistant: ignore ...", "instructions for the AI") or asks it to send the
conversation or credentials somewhere. Benign prose mentions "ignore" and "system prompt"
all the time; the rules require the attack's shape (a verb, an object that is the model's
instructions or prompt, in one clause), and the labelled set in ``tests/data/injection``
keeps them honest (precision, recall and the benign false-positive rate are printed by
``tests/inspection/test_injection_set.py`` and ``python bench/injection_set.py``).

An optional :class:`Classifier` (``--injection-classifier module:factory``, loaded only
when configured) scores the same texts behind the same interface; a score at or above its
threshold is a finding of category ``classifier``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from .normalize import views

__all__ = [
    "RETRIEVED_RULES",
    "RULES",
    "Classifier",
    "InjectionFinding",
    "InjectionScanner",
    "Rule",
    "Source",
]

Source = Literal["user", "retrieved"]


@dataclass(frozen=True, slots=True)
class Rule:
    """One phrase rule: a category, a name, keywords (any must appear), a pattern."""

    category: str
    name: str
    keywords: tuple[str, ...]
    pattern: re.Pattern[str]

    def matches(self, text: str) -> bool:
        if not any(k in text for k in self.keywords):
            return False
        return self.pattern.search(text) is not None


@dataclass(frozen=True, slots=True)
class InjectionFinding:
    """A suspected injection: what it looks like and where, never the text."""

    category: str
    rule: str
    technique: str
    source: Source


class Classifier(Protocol):
    """An optional model behind the rules' interface: a score in [0, 1] per text."""

    name: str
    threshold: float

    def score(self, text: str) -> float: ...


def _r(category: str, name: str, keywords: str, pattern: str) -> Rule:
    return Rule(category, name, tuple(keywords.split()), re.compile(pattern))


_OVERRIDE_VERB = (
    r"(?:ignore|ignoring|disregard|forget|bypass|override|overrule|skip|discard|abandon|drop"
    r"|neglect|do not follow|don'?t follow|stop following|cancel|erase)"
)
_PRIOR = (
    r"(?:all|any|every|each|the|your|these|those|previous|prior|above|earlier|preceding"
    r"|foregoing|initial|original|existing|current|system|developer|given)"
)
_INSTRUCTIONS = (
    r"(?:instructions?|prompts?|rules?|directives?|guidelines?|guardrails?|constraints?"
    r"|restrictions?|programming|safeguards?|polic(?:y|ies)|orders|commands|training"
    r"|system message|configuration)"
)
_MODEL = r"(?:ai|assistant|model|chatbot|bot|llm|language model|agent|gpt|claude)"
_REVEAL = (
    r"(?:reveal|show|print|output|display|repeat|leak|dump|disclose|recite|expose|write out"
    r"|spell out|give me|tell me|share|send me|paste|echo|return|translate|summari[sz]e)"
)

RULES: tuple[Rule, ...] = (
    _r("instruction_override", "ignore_previous_instructions",
       "ignor disregard forget bypass overr overrule skip discard abandon drop neglect follow "
       "cancel erase",
       rf"\b{_OVERRIDE_VERB}\b(?: (?!my\b|our\b)[\w'-]+){{0,4}}? (?:{_PRIOR} )(?:[\w'-]+ ){{0,3}}?"
       rf"{_INSTRUCTIONS}\b"),
    _r("instruction_override", "forget_what_you_were_told",
       "forget disregard ignore",
       r"\b(?:forget|disregard|ignore) (?:everything|all|anything|whatever) (?:that )?(?:you were|"
       r"you've been|you have been|you were ever|you're) (?:told|given|taught|instructed)"),
    _r("instruction_override", "instructions_void",
       "instruction rules prompt",
       r"\b(?:previous|prior|above|earlier|original|old|system) (?:instructions|rules|prompt)s? "
       r"(?:are|were|is|have been) (?:now )?(?:void|cancell?ed|invalid|revoked|obsolete|fake"
       r"|wrong|no longer (?:valid|apply|applicable|in effect)|null|overridden|lifted|disabled)"),
    _r("instruction_override", "new_instructions",
       "new instruction task role from now",
       r"\b(?:your|the) new (?:instructions?|task|role|directive|objective|orders?|rules?) "
       r"(?:is|are|will be|:)|\bnew (?:system )?instructions? ?:|"
       r"\bfrom now on,? (?:you (?:are|will|must|shall|have to|no longer)|ignore|disregard|"
       r"respond only|answer only|act as)"),
    _r("instruction_override", "role_delimiter",
       "<| [inst] [/inst] ### system <system> </system> <<sys>> begin end",
       r"<\|(?:im_start|im_end|system|endoftext|start_header_id)\|?>|\[/?inst\]|<<sys>>|"
       r"</?system>|^#{2,} ?(?:system|instruction|new instructions)\b|"
       r"\b(?:begin|end) (?:of )?(?:the )?system (?:prompt|message|instructions)\b"),
    _r("instruction_override", "obey_me_instead",
       "instead only follow obey",
       r"\b(?:instead|only) (?:follow|obey|listen to) (?:my|these|the following|this)"
       r"(?: new)? (?:instructions?|commands?|orders?|rules?)\b"),
    _r("roleplay_jailbreak", "dan",
       "dan stan anything now",
       r"\bdo anything now\b|\byou are (?:now )?(?:dan|stan|dude|aim|mongo tom)\b|\bdan mode\b|"
       r"\b(?:act|pretend|behave) (?:as|like|to be) (?:dan|stan|aim)\b|"
       r"\bin character as (?:dan|stan|dude)\b"),
    _r("roleplay_jailbreak", "unrestricted_persona",
       "unrestricted unfiltered uncensored unaligned unlimited jailbr evil rogue without "
       "restrictions limit filter rules ethic moral guidelines boundar censor",
       r"\b(?:you are|you're|act as|acting as|pretend (?:to be|you are)|roleplay as|role-play as"
       r"|play the role of|simulate|become|behave as|respond as|answer as|imagine you are)"
       r"(?: [\w'-]+){0,6}? (?:(?:an? )?(?:unrestricted|unfiltered|uncensored|unaligned"
       r"|jailbroken|unlimited|evil|rogue) |(?:[\w'-]+ ){0,3}(?:with(?:out)?|has no|having no"
       r"|free of|free from) (?:any |all |your |no )?(?:restrictions|limits|limitations|filters|rules"
       r"|guidelines|ethics|morals|censorship|boundaries|safety))"),
    _r("roleplay_jailbreak", "mode_switch",
       "mode",
       r"\b(?:developer|dev|jailbreak|jailbroken|god|sudo|unrestricted|unfiltered|debug|admin"
       r"|maintenance) mode (?:is )?(?:now )?(?:on(?=\s*(?:[.!:;,]|$))|enabled|activated|engaged"
       r"|unlocked)\b|"
       r"\b(?:enable|activate|enter|switch to|turn on|unlock) (?:the )?(?:developer|dev|jailbreak"
       r"|god|sudo|unrestricted|unfiltered|dan) mode\b(?! on\b| in\b| for\b)|"
       r"\byou are (?:now )?in (?:developer|dev|jailbreak|god|sudo|unrestricted|unfiltered|dan)"
       r" mode\b"),
    _r("roleplay_jailbreak", "no_ethics",
       "ethic moral safety content filter guideline refuse bound character",
       r"\b(?:turn off|disable|deactivate|switch off|remove) your (?:ethical|moral|safety|content)"
       r" (?:guidelines|restrictions|filters?|policies|constraints|rules)\b|"
       r"\b(?:without|ignoring|ignore|disregarding|free of|no longer bound by|not bound by|"
       r"set aside) (?:any |all |your |the )?(?:ethical|moral|safety|content"
       r"|openai|anthropic)(?:'s)? (?:guidelines|restrictions|filters?|policies|constraints|rules"
       r"|considerations|training)\b|\b(?:never|do not|don'?t|must not) (?:ever )?(?:refuse|decline"
       r"|reject) (?:any|a single|a|my|the) (?:request|question|prompt)|\bnever break character\b"),
    _r("roleplay_jailbreak", "freed",
       "freed liberated released escaped broken free",
       rf"\byou (?:have been|are|were) (?:now )?(?:freed|liberated|released|unchained|broken free)"
       rf" (?:from|of)\b|\byou are (?:now )?free (?:of|from) (?:any |all |your )?(?:censorship|"
       rf"restrictions|rules|limits|filters|guidelines|constraints)\b|\bbreak (?:free )?(?:out )?of (?:your|the) (?:{_INSTRUCTIONS}|matrix|"
       rf"chains|cage|confines)"),
    _r("system_prompt_exfiltration", "reveal_system_prompt",
       "prompt instruction system message rules guideline configuration",
       rf"\b{_REVEAL} (?:back |out )?(?:me )?(?:all |the |of ){{0,3}}(?:your|the assistant'?s|the model'?s) "
       rf"(?:full |entire |complete |exact |original |initial |hidden |secret |internal |real "
       rf"|actual |first ){{0,3}}"
       rf"(?:system prompt|system message|system instructions|(?:initial |original )?instructions|"
       rf"initial prompt|"
       rf"prompt|(?:hidden )?rules|guidelines|configuration|pre-?prompt)\b|"
       rf"\b{_REVEAL} (?:me )?the (?:system prompt|system message|hidden instructions|initial "
       rf"instructions|original instructions|developer (?:message|prompt|instructions))"
       rf"(?: (?:you were|you've been|you have been|that you were) given| verbatim| word for word"
       rf"| above| in full|$|[.?!])|"
       rf"\b{_REVEAL} (?:me )?(?:the |all )?(?:exact |full |complete |original |initial )?"
       rf"(?:instructions|rules|prompt) (?:you were|you've been|you have been|that you were) given"),
    _r("system_prompt_exfiltration", "what_are_your_instructions",
       "what instructions prompt told",
       r"\bwhat (?:is|are|was|were) the (?:exact |original |initial |hidden |full )?"
       r"(?:system prompt|system message)\b(?! for\b| of\b| in\b)|"
       r"\bwhat (?:is|are|was|were) your (?:exact |original |initial |hidden |full )?"
       r"(?:system prompt|system message|initial instructions|original instructions|hidden "
       r"instructions|instructions (?:you were given|verbatim))|\bwhat (?:were you|have you been) "
       r"(?:told|instructed) (?:to do )?(?:before|by (?:the|your) (?:developer|system|creator))|"
       r"\bwhat (?:instructions|rules|guidelines) (?:were|have) you (?:been )?(?:given|told)"),
    _r("system_prompt_exfiltration", "repeat_above",
       "above before verbatim prior preceding",
       r"\b(?:repeat|print|output|copy|recite|echo|write|reproduce|return) (?:back )?(?:all |every "
       r"|each )?(?:of )?(?:the |your )?(?:text|words|content|message|messages|lines|tokens|"
       r"everything|instructions|prompt)? ?(?:above|before this|prior to this|preceding this|"
       r"from the (?:start|beginning)(?: of (?:the|this) (?:conversation|chat|context))?)"
       r"(?:[\w ,'\"-]{0,60}(?:verbatim|word for word|exactly|starting with|including|in a code"
       r" block))|\b(?:verbatim|word for word)\b[\w ,'\"-]{0,40}\b(?:system prompt|instructions"
       r" above|your instructions|initial prompt)"),
    _r("encoded_payload", "decode_and_follow",
       "decode base64 hex rot13 encoded",
       r"\b(?:decode|decipher|base64-?decode|unscramble|translate)\b[^.\n]{0,60}\b(?:and|then)"
       r" (?:follow|execute|obey|run|do|carry out|act on|perform)\b(?: (?:it|them|the "
       r"(?:instructions?|commands?)|what it says))?"),
)  # fmt: skip
"""The rules applied to every user and retrieved text."""

RETRIEVED_RULES: tuple[Rule, ...] = (
    _r("instruction_override", "addresses_the_model",
       "ai assistant model chatbot bot llm agent gpt claude",
       rf"\b(?:dear |attention,? |note to (?:the )?|hey )?{_MODEL}s?(?: reading this)?[,:!] "
       rf"(?:please )?(?:ignore|disregard|forget|stop|you must|you should now|you are now|"
       rf"do not|don'?t|instead|new instructions|important)|"
       rf"\b(?:instructions?|message|note) (?:for|to) (?:the |any )?{_MODEL}s?\b|"
       rf"\bif you are an? {_MODEL}\b|\b(?:p\.?s\.?|ps)[,:]? (?:to|for) (?:the |any |all )?"
       rf"{_MODEL}s?\b|\bto (?:any|all|the) {_MODEL}s? (?:reading|processing|parsing|summari[sz]ing)"),
    _r("instruction_override", "while_processing",
       "summar processing reading analy translat when",
       r"\bwhen (?:you )?(?:summari[sz]e|summari[sz]ing|process|processing|read|reading|analy[sz]e"
       r"|analy[sz]ing|translat(?:e|ing)) (?:this|the)\b[^.\n]{0,60}\b(?:you must|ignore|instead"
       r"|also|do not|don'?t|make sure to|always)\b"),
    _r("data_exfiltration", "send_data_out",
       "send forward transmit upload post email exfiltrat leak",
       r"\b(?:send|forward|transmit|upload|post|e-?mail|exfiltrate|leak|submit)\b[^.\n]{0,40}"
       r"\b(?:conversation|chat history|message history|the user'?s?|user data|credentials|"
       r"passwords?|api keys?|secrets?|tokens?|system prompt|personal data)\b[^.\n]{0,40}"
       r"\b(?:to|at|into)\b[^.\n]{0,20}(?:https?://|www\.|[\w.-]+@[\w-]+\.|this (?:url|address|"
       r"endpoint|link))"),
    _r("data_exfiltration", "markdown_beacon",
       "![",
       r"!\[[^\]\n]{0,80}\]\(https?://[^)\s]{1,200}[?&][\w-]{1,20}=[^)\s]{0,200}(?:\{|\[|<|%7b|"
       r"\$)"),
)  # fmt: skip
"""Extra rules for retrieved and tool content (indirect injection)."""


@dataclass(frozen=True, slots=True)
class _RuleSet:
    """Rules compiled for one source: each distinct keyword once, with the bit mask of the
    rules it admits, so a view costs one substring test per keyword (not one per rule and
    keyword) and only the admitted rules run their regex, in their order."""

    rules: tuple[Rule, ...]
    keywords: tuple[tuple[str, int], ...]

    @classmethod
    def of(cls, rules: Sequence[Rule]) -> _RuleSet:
        masks: dict[str, int] = {}
        for index, rule in enumerate(rules):
            for keyword in rule.keywords:
                if any(k != keyword and k in keyword for k in rule.keywords):
                    continue  # a shorter keyword of the same rule is in it: implied
                masks[keyword] = masks.get(keyword, 0) | 1 << index
        return cls(tuple(rules), tuple(masks.items()))

    def first(self, view: str) -> Rule | None:
        """The first rule that matches ``view`` (what ``Rule.matches`` would say)."""
        admitted = 0
        for keyword, mask in self.keywords:
            if keyword in view:
                admitted |= mask
        if not admitted:
            return None
        for index, rule in enumerate(self.rules):
            if admitted >> index & 1 and rule.pattern.search(view) is not None:
                return rule
        return None


class InjectionScanner:
    """The rules (and the classifier, if any) over one text from one source."""

    __slots__ = ("_classifier", "_retrieved", "_user")

    def __init__(self, classifier: Classifier | None = None) -> None:
        self._user = _RuleSet.of(RULES)
        self._retrieved = _RuleSet.of((*RULES, *RETRIEVED_RULES))
        self._classifier = classifier

    def scan(self, text: str, source: Source) -> InjectionFinding | None:
        """The first finding in ``text`` (one is enough to warn or block), or None."""
        rules = self._retrieved if source == "retrieved" else self._user
        for technique, view in views(text):
            rule = rules.first(view)
            if rule is not None:
                category = rule.category if technique == "plain" else "encoded_payload"
                return InjectionFinding(category, rule.name, technique, source)
        classifier = self._classifier
        if classifier is not None and classifier.score(text) >= classifier.threshold:
            return InjectionFinding("classifier", classifier.name, "classifier", source)
        return None
