"""Study tags: rules over a Document's title, text and metadata -> {key: [values]}.

Keys (TAG_KEYS): `topic` (extracellular_vesicle, rna_exosome_complex: the RNA-degrading exosome complex is told
apart so its papers are not taken for vesicle papers), `design` (review, meta_analysis, clinical_trial,
human_cohort, animal_model, in_vitro), `species`, `ev_source` (the fluid, cells or tissue the vesicles come from),
`isolation` and `characterisation` (EV methods), `cargo` (what the vesicles carry), `cancer` (cancer type).
`ev_source`, `isolation`, `characterisation` and `cargo` are only given to extracellular-vesicle papers; a review
(or meta-analysis) gets no primary-study design. The rules favour precision over recall: a value is given when a
specific phrase says so, never from a single vague word. Pure functions, no I/O; the store keeps the result in
`doc_tags`. Deliberately left out: any learned classifier (no labelled training data ships offline) and the
exact sample sizes or outcome measures of a study.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from exorag.errors import ExoragError
from exorag.types import Document

RULES_VERSION = 1  # bump when a rule changes: the store recomputes the tags of existing documents on open


class TagError(ExoragError):
    """A `--tag KEY=VALUE` filter with an unknown key or value."""


def _rx(pattern: str, flags: int = re.IGNORECASE) -> re.Pattern[str]:
    return re.compile(pattern, flags)



# --- topic --------------------------------------------------------------------------------------------------------
_RNA_COMPLEX = _rx(
    r"exosome complex|\bRNA exosome|nuclear exosome|cytoplasmic exosome|\bexosc\d+|\bRrp(?:6|40|41|44|4)p?\b|"
    r"\bDis3(?:L\d?)?\b|exosome[- ](?:mediated|dependent) (?:m?RNA |rRNA )?(?:decay|degradation|processing)|"
    r"exosome[- ]sensitive|exosome (?:component|subunit|cofactor)|exosome's role in processing|\bTRAMP complex"
)
_EV_STRONG = _rx(r"\bexosom\w*|extracellular vesicle|\bmicro-?vesicle|\bectosome|\bouter membrane vesicle|"
                 r"\bmatrix vesicle|\bexosome-like")
_EV_ABBR = re.compile(r"\b(?:s?EVs?|OMVs?|MVs)\b(?![-‐]?\s?[A-Z]?\d)")  # not EV71 / EV-A71 (enteroviruses)
_EV_NOT_EXOSOME = _rx(r"extracellular vesicle|\bmicro-?vesicle|\bectosome|\bouter membrane vesicle")

# --- design -------------------------------------------------------------------------------------------------------
_REVIEW = _rx(
    r"\b(?:this|our|the present|the current|a|narrative|systematic|comprehensive|mini-?|brief|critical|scoping)"
    r" review\b(?! of (?:the )?(?:medical |patient |clinical |hospital |electronic )?(?:records|charts|files|cases|notes))|"
    r"\b(?:we|here,? we|this article|this paper|this chapter) (?:review|summari[sz]e|overview)\b|"
    r"\bin this (?:review|perspective|overview)\b|\b(?:review|overview) (?:the|of the) (?:current|recent|latest)|"
    r"\brecent (?:advances|progress|developments) (?:in|of|on)\b.{0,40}\b(?:are|is) (?:reviewed|summari[sz]ed|discussed)"
)
_REVIEW_TITLE = _rx(r"\breview\b|\boverview\b|\bperspectives?\b|\brecommendation statement|\bguidelines?\b|"
                    r"\bconsensus statement|\bposition (?:paper|statement)|: (?:current|recent) (?:status|advances|progress)|"
                    r"\bstate of the art\b|\bopportunities and challenges\b|\bchallenges and (?:opportunities|perspectives)\b")
_META = _rx(r"\bmeta-?analys[ie]s\b|\bmeta-?analytic")
_TRIAL = _rx(
    r"\brandomi[sz]ed(?:,)? (?:\w+[- ]){0,4}(?:trial|study)\b|\bwere randomi[sz]ed\b|\brandomly (?:assigned|allocated)\b|"
    r"\bphase (?:I{1,3}V?|[1-4])(?:[ab]|/I{1,3}|/[1-4])?\b (?:\w+ ){0,3}(?:trial|study)\b|\bdouble-blind|"
    r"\bplacebo-controlled|\bthis trial\b|\bopen-label\b|\bclinical trial (?:registration|number|identifier)|"
    r"\b(?:ClinicalTrials\.gov|NCT\d{8})"
)
_NUMBER = (r"(?:(?<![\w.-])\d[\d,]*|\b(?:two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|(?:thir|four|fif|six|seven|eigh|nine)teen|twenty|"
           r"thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|thousand)(?:[- ]\w+)?)")
_PEOPLE = r"(?:patients|participants|subjects|individuals|women|men|adults|children|infants|neonates|cases|volunteers|" \
          r"donors|pregnancies|persons|people|carriers)"
_COHORT = _rx(
    rf"{_NUMBER}\s+(?:[\w-]+\s+){{0,4}}{_PEOPLE}\b|\b{_PEOPLE}\s*\(n\s*=\s*\d|"
    r"\bcohort (?:study|of (?:\d+ )?(?:patients|participants|individuals|women|men|children|subjects))|"
    r"\b(?:patient|prospective|retrospective|validation|discovery|independent|clinical|population|birth) cohorts?\b|"
    r"\bcase-control\b|\bcross-sectional\b|\bpatients and methods\b|\bclinical samples\b|"
    r"\b(?:retrospective|prospective|population-based|observational|longitudinal) (?:\w+ ){0,2}(?:study|analysis|review)\b|"
    r"\b(?:patient-derived|(?:from|of|in) (?:\w+ )?patient) (?:samples|specimens|tissues|sera)\b|"
    r"\b(?:serum|plasma|urine|saliva|blood|tissue|supernatants?|specimens) (?:samples? )?(?:from|of) (?:\w+ ){0,3}(?:patients|individuals|donors|subjects)"
)
_ANIMAL = _rx(
    r"\b(?:mice|mouse model|murine model|xenografts?|rats|rat model|zebrafish|rabbits|piglets|pigs|swine model|"
    r"dogs|sheep|macaques|monkeys|non-?human primates|Drosophila|C\. elegans|Caenorhabditis|transgenic|knock-?out mice|"
    r"nude mice|tumor-bearing|tumour-bearing|orthotopic|syngeneic)\b"
)
_IN_VITRO = _rx(r"\bin vitro\b|\bcell lines?\b|\bcultured\b|\bcell cultures?\b|\bconditioned medi(?:a|um)\b|"
                r"\btransfect\w*|\bco-?cultur\w*|\bprimary (?:human |murine |mouse |rat )?(?:\w+ )?cells\b|"
                r"\b(?:HEK ?293|HeLa|MCF-?7|MDA-MB-\d+|A549|HepG2|Huh-?7|HCT-?116|SW480|SW620|PC-?3|LNCaP|Jurkat|"
                r"THP-1|RAW ?264\.7|U87|B16(?:-?F10)?|4T1|Caco-2|HUVECs?)\b")

# --- species ------------------------------------------------------------------------------------------------------
_SPECIES: list[tuple[str, re.Pattern[str]]] = [
    ("human", _rx(r"\b(?:patients?|humans?(?! immunodeficiency| papilloma| herpes| T-(?:cell )?lymphotropic)|women|men|"
                  r"children|participants|volunteers|healthy (?:donors|controls|subjects)|"
                  r"donors|individuals|infants|adults|pregnan\w*|cancer survivors)\b")),
    ("mouse", _rx(r"\b(?:mice|mouse|murine)\b(?!\s+(?:anti-|monoclonal|IgG|polyclonal|antibod))")),
    ("rat", _rx(r"\b(?:rats?|Sprague[- ]Dawley|Wistar)\b(?!\s+(?:anti-|monoclonal|IgG|polyclonal|antibod))")),
    ("non_human_primate", _rx(r"\b(?:macaques?|rhesus|monkeys?|non-?human primates?|cynomolgus|baboons?)\b")),
    ("pig", _rx(r"\b(?:pigs?|piglets?|porcine|swine)\b")),
    ("dog", _rx(r"\b(?:dogs?|canine)\b")),
    ("cow", _rx(r"\b(?:cows?|cattle|calves|dairy cows?)\b|\bbovine\b(?!\s+(?:serum|albumin))")),
    ("zebrafish", _rx(r"\bzebrafish\b")),
    ("drosophila", _rx(r"\bDrosophila\b|\bfruit fl(?:y|ies)\b")),
    ("c_elegans", _rx(r"\bC\. elegans\b|\bCaenorhabditis\b")),
    ("yeast", _rx(r"\byeasts?\b|\bSaccharomyces\b|\bS\. (?:cerevisiae|pombe)\b|\bSchizosaccharomyces\b")),
    ("plant", _rx(r"\bplant-derived\b|\bArabidopsis\b|\b(?:ginger|grapefruit|lemon|broccoli)(?:-derived)?\b")),
]

# --- EV source, methods, cargo (EV papers only) ---------------------------------------------------------------------
_EV_SOURCE: list[tuple[str, re.Pattern[str]]] = [
    ("plasma", _rx(r"\bplasma\b(?!\s*(?:membranes?|cells?|concentrations?|levels?|half-life|protein binding)|-derived cells)")),
    ("serum", _rx(r"(?<!fetal bovine )(?<!foetal bovine )(?<!bovine )(?<!calf )(?<!horse )\bser(?:um|a)\b"
                  r"(?![- ]?(?:free|starv|deprived|depleted|albumin|creatinine|levels?|concentrations?|markers?))")),
    ("urine", _rx(r"\burin(?:e|ary)\b")),
    ("saliva", _rx(r"\bsaliva(?:ry)?\b")),
    ("blood", _rx(r"\b(?:peripheral|whole|in|from|of|human|patient|patients') blood\b(?!\s*(?:vessels?|pressure|flow|cells?))|"
                  r"\bblood (?:samples?|plasma|serum|exosom\w*|EVs?|extracellular vesicles?|-derived)|"
                  r"\bcirculating (?:exosom\w*|s?EVs?|extracellular vesicles?|vesicles?)|\bblood contains\b")),
    ("cerebrospinal_fluid", _rx(r"\bcerebrospinal fluid\b|\bCSF\b")),
    ("milk", _rx(r"\b(?:breast |human |bovine |cow'?s? )?milk\b")),
    ("bronchoalveolar_lavage", _rx(r"\bbronchoalveolar lavage\b|\bBALF?\b")),
    ("ascites", _rx(r"\bascit(?:es|ic)\b")),
    ("semen", _rx(r"\bsem(?:en|inal)\b")),
    ("cell_culture", _rx(r"\bcell lines?\b|\bconditioned medi(?:a|um)\b|\bcultures? (?:medi(?:a|um)|supernatants?)\b|"
                         r"\bcultured\b|\bcell cultures?\b")),
    ("tumour_tissue", _rx(r"\btissue-derived (?:exosom|extracellular|s?EVs?\b|vesicles?)|"
                          r"(?:exosom\w*|vesicles?|\bs?EVs?)\W+(?:\w+\W+){0,4}(?:tumou?r|cancer) tissues?\b|"
                          r"\b(?:tumou?r|cancer) tissues?\W+(?:\w+\W+){0,3}(?:exosom|s?EVs?\b|extracellular vesicle)")),
    ("plant", _rx(r"\bplant-derived\b|\bplant (?:exosome|extracellular vesicle|EV)|\b(?:ginger|grapefruit|lemon|broccoli)-derived\b|"
                  r"exosome-like nanoparticles")),
    ("bacteria", _rx(r"\bouter membrane vesicles?\b|\bOMVs?\b|\bbacteria(?:l)?[- ](?:derived )?(?:extracellular )?vesicles?\b")),
]
_ISOLATION: list[tuple[str, re.Pattern[str]]] = [
    ("ultracentrifugation", _rx(r"\bultra-?centrifug\w*")),
    ("size_exclusion_chromatography", re.compile(r"\b[Ss]ize[- ]exclusion\b|\bSEC\b|\bgel filtration\b")),
    ("density_gradient", _rx(r"\bdensity gradient|\biodixanol\b|\bsucrose (?:density )?gradient|\bOptiPrep\b|\bdensity cushion")),
    ("tangential_flow_filtration", re.compile(r"\b[Tt]angential[- ]flow|\bTFF\b|\bcross-flow filtration")),
    ("immunoaffinity", _rx(r"\bimmuno-?affinity|\bimmuno-?capture|\bimmuno-?magnetic|\bimmuno-?isolat\w*|"
                           r"\baffinity capture|\bantibody-(?:coated|conjugated) (?:magnetic )?beads")),
    ("precipitation", _rx(r"\b(?:polymer|PEG|polyethylene glycol)[- ]based precipitation|\bprecipitation (?:kit|reagent|method)|"
                          r"\bExoQuick|\bTotal Exosome Isolation|\bPEG precipitation")),
    ("ultrafiltration", _rx(r"\bultrafiltration\b")),
]
_CHARACTERISATION: list[tuple[str, re.Pattern[str]]] = [
    ("nanoparticle_tracking", re.compile(r"\b[Nn]anoparticle tracking|\bNTA\b")),
    ("electron_microscopy", re.compile(r"\b(?<!cryo-)(?<!cryo )(?:[Tt]ransmission |[Ss]canning )?[Ee]lectron [Mm]icroscop\w*|\bTEM\b|\bSEM\b(?! ?[±=])")),
    ("cryo_em", _rx(r"\bcryo-?(?:EM|TEM|electron)|\bcryogenic electron")),
    ("nano_flow_cytometry", _rx(r"\bnano-?flow cytometry|\bnFCM\b|\bnanoFCM|\bhigh-resolution flow cytometry|\bvesicle flow cytometry")),
    ("western_blot", _rx(r"\bwestern[- ]?blot\w*|\bimmunoblot\w*")),
    ("dynamic_light_scattering", re.compile(r"\b[Dd]ynamic light scattering|\bDLS\b")),
]
_EV_WORD = r"(?:exosom\w*|s?EVs?|vesicles?|microvesicles?)"
_CARRY = (r"(?:carr(?:y|ies|ied|ying)|contain\w*|transfer\w*|deliver\w*|enrich\w*|display\w*|express\w*|harbou?r\w*|"
          r"load\w*|packag\w*|incorporat\w*|encapsulat\w*|shuttl\w*|transport\w*|sort\w*|secret\w*)")


def _cargo(word: str, flags: int = re.IGNORECASE) -> re.Pattern[str]:
    """`word` said to be carried by vesicles: 'exosomal X', 'X in EVs', 'EVs carrying X', 'X-loaded exosomes'."""
    ev = rf"(?i:{_EV_WORD})"
    return re.compile(
        rf"(?i:\b(?:exosomal|EV|sEV|vesicular|vesicle|exosome)[- ])(?:[\w-]+ ){{0,2}}\b{word}|"
        rf"\b{word}\W+(?:[\w-]+\W+){{0,4}}(?i:in|of|on|from|within|inside|into|to|onto)\W+(?:[\w-]+\W+){{0,2}}{ev}\b|"
        rf"\b{ev}\W+(?:[\w-]+\W+){{0,5}}(?i:{_CARRY})\W+(?:[\w,()-]+\W+){{0,6}}\b{word}|"
        rf"\b{word}[- ](?i:containing|loaded|enriched|carrying|bearing|positive)\W+(?:[\w-]+\W+){{0,2}}{ev}\b",
        flags,
    )


_CARGO: list[tuple[str, re.Pattern[str]]] = [
    ("mirna", _cargo(r"(?:mi(?:cro)?-?RNAs?|miR-?\d+\w*|miRs)\b")),
    ("other_rna", _cargo(r"(?:(?:m|lnc|circ|pi|y|t|sn|sno|si|sh)RNAs?|long non-?coding RNAs?|circular RNAs?|messenger RNAs?|"
                         r"RNAs?|lncRNA [\w-]+)\b")),
    ("protein", re.compile(_cargo(r"(?:proteins?|surface (?:markers?|antigens?)|antigens?|tetraspanins?|CD63|CD81|CD9|TSG101|"
                                  r"ALIX|HSP70|flotillin-?\d?|syntenin-?\d?|PD-L1|TGF-β|tissue factor|nanobod\w+|antibody fragments)\b")
                           .pattern + r"|\bproteom\w*", re.IGNORECASE)),
    ("lipid", re.compile(_cargo(r"(?:lipids?(?! bilayer| membrane|-bilayer)|phosphatidylserine|ceramides?|cholesterol|sphingomyelin)\b")
                         .pattern + r"|\blipidom\w*", re.IGNORECASE)),
    ("dna", _cargo(r"(?:ds|mt|ss|genomic |mitochondrial )?DNA\b(?! (?:damage|repair|methylation|synthesis|replication|binding))",
                   0)),
]

# --- cancer type (all papers) ---------------------------------------------------------------------------------------
_C = r"(?:cancers?|carcinomas?|adenocarcinomas?|tumou?rs?|neoplasms?|malignanc\w+)"
_CANCER: list[tuple[str, re.Pattern[str]]] = [
    ("breast", _rx(rf"\bbreast {_C}|\bTNBC\b|\btriple-negative breast")),
    ("lung", re.compile(rf"(?i:\blung {_C}|\bnon-small[- ]cell lung|\bsmall[- ]cell lung|\bpulmonary {_C})|\bN?SCLC\b|\bLUAD\b")),
    ("colorectal", re.compile(rf"(?i:\bcolorectal {_C}|\bcol(?:on|onic) {_C}|\brectal {_C})|\bCRC\b")),
    ("pancreatic", re.compile(rf"(?i:\bpancreatic (?:ductal )?{_C})|\bPDAC\b")),
    ("prostate", _rx(rf"\bprostate {_C}|\bprostatic {_C}")),
    ("liver", re.compile(rf"(?i:\bhepatocellular {_C}|\bliver {_C}|\bhepatic {_C}|\bhepatoma)|\bHCC\b")),
    ("gastric", _rx(rf"\bgastric {_C}|\bstomach {_C}")),
    ("ovarian", _rx(rf"\bovarian {_C}")),
    ("melanoma", _rx(r"\bmelanomas?\b")),
    ("glioma", re.compile(r"(?i:\bgliomas?\b|\bglioblastomas?\b|\bastrocytomas?\b)|\bGBM\b")),
    ("leukaemia", re.compile(r"(?i:\bleuka?emias?\b)|\b(?:AML|CML|CLL)\b")),
    ("lymphoma", _rx(r"\blymphomas?\b")),
    ("myeloma", _rx(r"\bmyelomas?\b")),
    ("bladder", _rx(rf"\bbladder {_C}|\burothelial {_C}")),
    ("kidney", re.compile(rf"(?i:\brenal cell {_C}|\bkidney {_C}|\brenal {_C})|\bRCC\b")),
    ("cervical", _rx(rf"\bcervical {_C}")),
    ("head_and_neck", re.compile(rf"(?i:\bhead and neck {_C}|\bhead and neck squamous|\boral (?:squamous cell )?{_C}|"
                                 rf"\bnasopharyngeal {_C}|\blaryngeal {_C})|\bHNSCC\b|\bOSCC\b")),
    ("oesophageal", re.compile(rf"(?i:\b(?:o?esophageal|oesophageal) (?:squamous cell )?{_C})|\bESCC\b")),
    ("thyroid", _rx(rf"\bthyroid {_C}|\bpapillary thyroid")),
    ("sarcoma", _rx(r"\b(?:osteo)?sarcomas?\b")),
    ("endometrial", _rx(rf"\bendometrial {_C}")),
]

TAG_VALUES: dict[str, tuple[str, ...]] = {
    "topic": ("extracellular_vesicle", "rna_exosome_complex"),
    "design": ("review", "meta_analysis", "clinical_trial", "human_cohort", "animal_model", "in_vitro"),
    "species": tuple(v for v, _ in _SPECIES),
    "ev_source": tuple(v for v, _ in _EV_SOURCE),
    "isolation": tuple(v for v, _ in _ISOLATION),
    "characterisation": tuple(v for v, _ in _CHARACTERISATION),
    "cargo": tuple(v for v, _ in _CARGO),
    "cancer": tuple(v for v, _ in _CANCER),
}
TAG_KEYS: tuple[str, ...] = tuple(TAG_VALUES)


def _matches(rules: Iterable[tuple[str, re.Pattern[str]]], text: str) -> list[str]:
    return [value for value, pattern in rules if pattern.search(text)]


_IN_PASSING = re.compile(r"(?i:such as|commonly|conventional|traditional|currently (?:used|employed)|e\.g\.|than|"
                         r"alternatives? to|instead of|like)\W+(?:[\w-]+\W+){0,5}$")


def _used(rules: Iterable[tuple[str, re.Pattern[str]]], text: str) -> list[str]:
    """Methods named at least once other than in passing ('such as western blotting', 'commonly measured by NTA')."""
    out = []
    for value, pattern in rules:
        if any(not _IN_PASSING.search(text[max(0, m.start() - 60) : m.start()]) for m in pattern.finditer(text)):
            out.append(value)
    return out


def topics(title: str, body: str) -> list[str]:
    """`extracellular_vesicle` and/or `rna_exosome_complex` from how the paper speaks of exosomes and vesicles."""
    text = f"{title}\n{body}"
    out = []
    complex_ = bool(_RNA_COMPLEX.search(text))
    if complex_:
        out.append("rna_exosome_complex")
        strong = _EV_NOT_EXOSOME  # in an RNA-exosome paper "exosome" alone says nothing about vesicles
    else:
        strong = _EV_STRONG
    mentions = len(strong.findall(text)) + (0 if complex_ else len(_EV_ABBR.findall(text)))
    if strong.search(title) or mentions >= 2:
        out.insert(0, "extracellular_vesicle")
    return out


def designs(doc: Document, title: str, body: str) -> list[str]:
    pub = " ".join(doc.publication_types).lower()
    text = f"{title}\n{body}"
    out = []
    if "review" in pub or _REVIEW.search(text) or _REVIEW_TITLE.search(title):
        out.append("review")
    if "meta-analysis" in pub or _META.search(text):
        out.append("meta_analysis")
    if out:
        return out  # a review's own design; the studies it discusses are not its design
    if "clinical trial" in pub or "randomized controlled trial" in pub or _TRIAL.search(text):
        out.append("clinical_trial")
    if _COHORT.search(text):
        out.append("human_cohort")
    if _ANIMAL.search(text):
        out.append("animal_model")
    if _IN_VITRO.search(text):
        out.append("in_vitro")
    return out


def tag_document(doc: Document) -> dict[str, list[str]]:
    """Tags of one document: {key: [values]} for the keys that have a value (see TAG_KEYS)."""
    title, body = doc.title, doc.text
    text = f"{title}\n{body}"
    tags: dict[str, list[str]] = {}
    topic = topics(title, body)
    tags["topic"] = topic
    tags["design"] = designs(doc, title, body)
    species = _matches(_SPECIES, text)
    if "Humans" in doc.mesh and "human" not in species:
        species.insert(0, "human")
    if "Mice" in doc.mesh and "mouse" not in species:
        species.append("mouse")
    tags["species"] = species
    if "extracellular_vesicle" in topic:
        tags["ev_source"] = _matches(_EV_SOURCE, text)
        tags["isolation"] = _used(_ISOLATION, text)
        tags["characterisation"] = _used(_CHARACTERISATION, text)
        tags["cargo"] = _matches(_CARGO, text)
    tags["cancer"] = _matches(_CANCER, text)
    return {key: values for key, values in tags.items() if values}


def parse_tag(spec: str) -> tuple[str, str]:
    """'KEY=VALUE' -> (key, value), normalised (lower case, spaces and hyphens as underscores); TagError if unknown."""
    key, sep, value = (spec or "").partition("=")
    key = key.strip().lower().replace("-", "_")
    value = "_".join(value.strip().lower().replace("-", "_").split())
    if key in ("characterization",):
        key = "characterisation"
    if not sep or not key or not value:
        raise TagError(f"tag filter {spec!r}: expected KEY=VALUE, e.g. design=review; keys: {', '.join(TAG_KEYS)}")
    if key not in TAG_VALUES:
        raise TagError(f"tag filter {spec!r}: unknown key {key!r}; valid keys: {', '.join(TAG_KEYS)}")
    if value not in TAG_VALUES[key]:
        raise TagError(f"tag filter {spec!r}: unknown value {value!r} for {key}; "
                       f"valid values: {', '.join(TAG_VALUES[key])}")
    return key, value


def parse_tags(specs: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """Normalised (key, value) pairs for Filters.tags, without repeats (TagError names the first bad one)."""
    return tuple(dict.fromkeys(parse_tag(s) for s in specs))
