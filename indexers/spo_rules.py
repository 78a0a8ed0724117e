"""Dependency-parse rules that turn one spaCy sentence into subject–predicate–object triples.

Pure functions over a parsed Doc (no model loading, no I/O), so they run in whichever
process parsed it. Conventions (DESIGN.md §3.1):

* Arguments are phrases: the named-entity span covering the head token if there is one
  (unless the entity swallowed a coordination; a trailing "'s" is dropped), else the head
  plus its left name modifiers (compound/amod/nummod/nmod/quantmod), extended over the
  corpus' spaced hyphens ("Person - centered therapy", "editor - in - chief") and, for
  proper nouns, over "of <Proper noun>" ("Journal of Mathematical Physics"). "City, State"
  place pairs are one argument ("mobile alabama"). Determiners and possessors are never
  part of an argument; adjectives, adverbs and wh-/demonstrative pronouns never are one.
* Predicate = verb lemma (+ particle) (+ preposition for prep→pobj, "by" for the agent),
  "not " prefixed when negated. Copula "be" is written "is".
* Passive voice keeps the surface direction, like HippoRAG's GPT-3.5 OpenIE:
  "C was founded by A" → (c, founded by, a); the predicate is the participle, not the lemma.
* A common-noun object with a prepositional modifier folds into the predicate:
  "X is the capital of France" → (x, is capital of, france). The unfolded (x, is, capital)
  is kept only when the object is more than one word ("public art project").
* Apposition: "X, the Y of Z" → (x, is, y) + (x, is y of, z); a proper-noun appositive
  of a common noun becomes the subject ("the president, Obama" → (obama, is, president)).
* Possessive: "Z's Y X" → (z, has y, x); bare "Z's Y" → (z, has, y) (not for a pronoun
  possessor of a bare noun: "his time").
* relcl/acl: the modified noun fills the relative pronoun's role (subject or object);
  a past-participle acl is passive ("a journal published by W" → (journal, published by, w));
  a clause on a copula complement is about the copula's subject ("X is a journal
  published by W" → (x, published by, w)).
* Coordination fans out on subjects, objects and verbs; xcomp chains fold into the
  predicate ("X began to play Y" → (x, begin to play, y)).
* Title resolution (when a title is given): personal pronouns (he/she/it/they/his/its…),
  "the <kind>" where the kind is the title's qualifier "(film)" or its copula class ("T is
  a journal" → "the journal"), a bare surname of the title, and the implicit owner of a
  role ("The editor is Jane Doe" → (t, has editor, jane doe)). "the state of Florida" → florida.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterable, Iterator

from hippograph.text import normalize_entity

if TYPE_CHECKING:  # pragma: no cover — annotations only: importing this module loads no spaCy (nor torch)
    from spacy.tokens import Span, Token

Lemmatize = Callable[["Token"], str]
RawTriple = tuple[str, str, str]

NAME_MODIFIERS = frozenset({"compound", "amod", "nummod", "nmod", "quantmod"})
SUBJECT_DEPS = frozenset({"nsubj", "nsubjpass"})
OBJECT_DEPS = frozenset({"dobj", "attr", "oprd", "dative"})
PREP_DEPS = frozenset({"prep", "agent"})
HYPHENS = frozenset({"-", "–"})
PLACE_CLASS_NOUNS = frozenset(
    {"city", "town", "village", "state", "county", "province", "region", "district", "island",
     "islands", "republic", "kingdom", "municipality", "borough", "commune", "parish", "township",
     "hamlet", "community", "territory", "prefecture", "emirate", "duchy", "principality"}
)
""""the state of Florida" is Florida."""
LIGHT_NOUNS = frozenset({"form", "type", "kind", "sort", "genre", "species", "variety", "style", "version", "subgenre"})
""""X is a form of Y developed by Z": the clause on Y is about X."""
PERSONAL_PRONOUNS = frozenset(
    {"he", "she", "it", "they", "him", "her", "them", "his", "its", "their", "hers", "theirs"}
)
NOUN_POS = frozenset({"NOUN", "PROPN", "NUM", "PRON", "X", "ADJ"})
_ARG_STOP = frozenset(
    {
        "who", "whom", "whose", "which", "that", "this", "these", "those", "what", "there",
        "here", "i", "me", "we", "us", "you", "one", "ones", "itself", "himself", "herself",
        "themselves", "something", "anything", "nothing", "everything", "someone", "anyone",
        "all", "both", "each", "some", "many", "most", "other", "others", "such", "none",
        "he", "she", "it", "they", "him", "her", "them", "his", "its", "their", "hers",
    }
)


_NUMERIC_LABELS = frozenset({"DATE", "TIME", "CARDINAL", "ORDINAL", "QUANTITY", "PERCENT", "MONEY"})
_BE_FORMS = frozenset({"is", "was", "are", "were", "be", "been", "being", "'s"})


def entity_spans(doc_ents: Iterable[Span]) -> dict[int, Span]:
    """Map token index → named-entity span, for O(1) lookups while walking a sentence."""
    index: dict[int, Span] = {}
    for ent in doc_ents:
        for i in range(ent.start, ent.end):
            index[i] = ent
    return index


class SentenceRules:
    """Extracts triples from one parsed sentence; holds the per-passage context."""

    def __init__(
        self, ents: dict[int, Span], lemmatize: Lemmatize, title: str = "", type_nouns: Iterable[str] = ()
    ) -> None:
        self.ents = ents
        self.lemmatize = lemmatize
        self.title = normalize_entity(title) if title else ""
        self.title_words = frozenset(self.title.split())
        self.type_nouns = frozenset(type_nouns)
        """Common nouns that name the title's kind ("film", "journal"): "the film" → title."""

    def learn_type_nouns(self, doc: Span) -> None:
        """Collect the title's kind from "<title> is a … Y" sentences (needs `title`)."""
        if not self.title:
            return
        found = set(self.type_nouns)
        for tok in doc:
            if tok.dep_ == "attr" and tok.pos_ == "NOUN" and tok.head.pos_ in ("AUX", "VERB"):
                subj = [c for c in tok.head.children if c.dep_ == "nsubj"]
                if subj and self.title in self.args(subj[0]):
                    found.add(tok.lower_)
        self.type_nouns = frozenset(found)

    # ------------------------------------------------------------------ phrases
    def phrase_span(self, tok: Token) -> Span:
        """The argument span for a head token (see module docstring)."""
        doc = tok.doc
        ent = self.ents.get(tok.i)
        if ent is not None and not any(t.pos_ == "CCONJ" for t in ent):
            start, end = ent.start, ent.end
            while end - 1 > start and (doc[end - 1].tag_ == "POS" or doc[end - 1].is_punct):
                end -= 1  # "Henrik Ibsen 's"
            # "Mobile, Alabama": a place qualified by an appositive place is one argument
            if ent.label_ == "GPE" and end + 1 < tok.sent.end and doc[end].text == ",":
                nxt = self.ents.get(end + 1)
                if nxt is not None and nxt.label_ == "GPE" and nxt.root.dep_ == "appos" and nxt.root.head.i in range(start, end):
                    end = nxt.end
        else:
            start = tok.i
            for child in tok.lefts:
                if child.dep_ in NAME_MODIFIERS:
                    start = min(start, child.left_edge.i)
            end = tok.i + 1
            # "Journal of Mathematical Physics": proper noun + of + proper noun
            if tok.pos_ == "PROPN":
                for child in tok.rights:
                    if child.dep_ == "prep" and child.lower_ == "of" and child.i == end:
                        pobjs = [c for c in child.children if c.dep_ == "pobj" and c.pos_ == "PROPN"]
                        if pobjs:
                            # "Institute of Mathematics & Informatics": keep proper-noun conjuncts
                            last = pobjs[0]
                            for conj in self.fan_out(pobjs[0])[1:]:
                                if conj.pos_ == "PROPN":
                                    last = conj if conj.i > last.i else last
                            end = max(self.phrase_span(last).end, last.i + 1)
                        break
        # skip leading determiners/possessors that a modifier subtree may have pulled in
        while start < end - 1 and doc[start].dep_ in ("det", "poss", "case", "predet", "punct"):
            start += 1
        # " - " joins (the corpus tokenises "Person - centered therapy")
        sent_start = tok.sent.start
        while start - 2 >= sent_start and doc[start - 1].text in HYPHENS and not doc[start - 2].is_punct:
            start -= 2
            left = doc[start]
            for child in left.lefts:
                if child.dep_ in NAME_MODIFIERS:
                    start = min(start, child.left_edge.i)
        # "editor - in - chief": hyphen chains inside the head's own subtree
        right_edge = tok.right_edge.i
        while end + 1 <= right_edge and doc[end].text in HYPHENS and doc[end + 1].is_alpha:
            end += 2
        return doc[start:end]

    def argument(self, tok: Token) -> str:
        """Normalised argument text for a head token, '' when it is not a usable argument."""
        if tok.pos_ == "PRON" or tok.lower_ in _ARG_STOP:
            if tok.lower_ in PERSONAL_PRONOUNS and self.title:
                return self.title
            return ""
        if tok.pos_ in ("ADJ", "ADV", "VERB", "AUX", "ADP", "DET") and tok.i not in self.ents:
            return ""  # "the most famous was …": not an entity
        if tok.pos_ == "NOUN" and tok.i not in self.ents:
            # "Obama's wife Michelle attended …": the name stands for the role noun
            for child in tok.rights:
                if child.dep_ == "appos" and child.pos_ == "PROPN":
                    return self.argument(child)
            # "the state of Florida" → Florida
            if tok.lower_ in PLACE_CLASS_NOUNS:
                for child in tok.rights:
                    if child.dep_ == "prep" and child.lower_ == "of":
                        pobj = [c for c in child.children if c.dep_ == "pobj" and c.i in self.ents]
                        if pobj and self.ents[pobj[0].i].label_ in ("GPE", "LOC", "FAC", "ORG"):
                            return self.argument(pobj[0])
            # "The film premiered …" in the passage about a film → the title
            if self.title and tok.lower_ in self.type_nouns:
                lefts = [c.dep_ for c in tok.lefts]
                if lefts and all(d == "det" for d in lefts) and any(
                    c.lower_ in ("the", "this") for c in tok.lefts
                ):
                    return self.title
        text = normalize_entity(self.phrase_span(tok).text)
        if not text or text in _ARG_STOP:
            return ""
        # "Hayek" in the passage "Friedrich Hayek" → the title (person name parts only)
        if self.title_words and text != self.title:
            ent = self.ents.get(tok.i)
            words = text.split()
            if ent is not None and ent.label_ == "PERSON" and set(words) < self.title_words:
                return self.title
            if (
                ent is None and tok.pos_ in ("PROPN", "NOUN") and tok.text[:1].isupper()
                and len(words) == 1 and self.title.endswith(" " + text)
            ):
                return self.title  # a bare surname the NER missed
        return text

    # ------------------------------------------------------------ coordination
    @staticmethod
    def fan_out(tok: Token) -> list[Token]:
        """A token and its conjuncts ("A, B and C" → [A, B, C])."""
        out = [tok]
        stack = [tok]
        while stack:
            cur = stack.pop()
            for child in cur.children:
                if child.dep_ == "conj" and child.pos_ not in ("VERB", "AUX"):
                    out.append(child)
                    stack.append(child)
        return out

    # ------------------------------------------------------------- predicates
    @staticmethod
    def is_passive(verb: Token) -> bool:
        if any(c.dep_ in ("auxpass", "nsubjpass") for c in verb.children):
            return True
        return verb.dep_ == "acl" and verb.tag_ == "VBN"

    def predicate(self, verb: Token, passive: bool) -> str:
        """Verb lemma (participle when passive) + particle, 'not ' when negated; be → is."""
        if passive:
            base = verb.lower_
        else:
            base = self.lemmatize(verb).lower()
            if base == "be":
                base = "is"
        parts = [base]
        for child in verb.children:
            if child.dep_ == "prt":
                parts.append(child.lower_)
        pred = " ".join(parts)
        if any(c.dep_ == "neg" for c in verb.children):
            pred = "not " + pred
        return pred

    # ------------------------------------------------------------------- walk
    def triples(self, sent: Span) -> list[RawTriple]:
        """All triples of one sentence (may contain duplicates; the caller dedupes)."""
        out: list[RawTriple] = []
        handled_xcomp: set[int] = set()
        for tok in sent:
            if tok.pos_ in ("VERB", "AUX") and tok.dep_ not in ("aux", "auxpass"):
                if tok.i in handled_xcomp:
                    continue
                subjects = self.subjects(tok)
                if subjects:
                    out.extend(self.verb_triples(tok, subjects, "", handled_xcomp))
                if self.title and tok.lower_ in _BE_FORMS:
                    out.extend(self.role_triples(tok))
            if tok.dep_ == "appos":
                out.extend(self.appos_triples(tok))
            if tok.dep_ == "poss":
                out.extend(self.poss_triples(tok))
        return out

    def args(self, tok: Token) -> list[str]:
        """Arguments of a head token with coordination fanned out.

        A coordination that spells the passage title ("Culture, Society and
        Masculinities") stays one argument.
        """
        if self.title and any(c.dep_ == "conj" for c in tok.children):
            whole = normalize_entity(tok.doc[tok.left_edge.i : tok.right_edge.i + 1].text)
            if whole == self.title:
                return [self.title]
        return [a for a in map(self.argument, self.fan_out(tok)) if a]

    def noun_args(self, noun: Token) -> list[str]:
        """Arguments standing for a noun modified by a relcl/acl clause.

        "X is a journal published by W" / "X, a journal published by W": the clause is
        about X, so the copula's subject (or the apposition's anchor) fills the role.
        """
        if noun.dep_ == "attr" and noun.head.pos_ in ("AUX", "VERB") and self.lemmatize(noun.head) == "be":
            inherited = self.subjects(noun.head)
            if inherited:
                return inherited
        if noun.dep_ == "pobj" and noun.head.lower_ == "of" and noun.head.head.lower_ in LIGHT_NOUNS:
            light = noun.head.head
            if light.dep_ == "attr" and light.head.pos_ in ("AUX", "VERB"):
                inherited = self.subjects(light.head)
                if inherited:
                    return inherited
        if noun.dep_ == "appos" and noun.head.pos_ == "PROPN":
            inherited = self.args(noun.head)
            if inherited:
                return inherited
        return self.args(noun)

    def subjects(self, verb: Token) -> list[str]:
        """Subject arguments of a verb: explicit, relative-clause head, or inherited."""
        explicit = [c for c in verb.children if c.dep_ in SUBJECT_DEPS]
        if explicit:
            out: list[str] = []
            for subj in explicit:
                if verb.dep_ in ("relcl", "acl") and subj.tag_ in ("WP", "WDT") or (
                    verb.dep_ == "relcl" and subj.lower_ == "that"
                ):
                    out.extend(self.noun_args(verb.head))
                else:
                    out.extend(self.args(subj))
            return out
        head = verb.head
        if verb.dep_ in ("relcl", "acl") and head.pos_ in NOUN_POS:
            # relcl with an object relative pronoun has an explicit subject (handled above)
            return self.noun_args(head)
        if verb.dep_ == "conj" and head.pos_ in ("VERB", "AUX") and head is not verb:
            return self.subjects(head)
        if verb.dep_ == "advcl" and verb.tag_ in ("VBG", "VBN") and head.pos_ in ("VERB", "AUX"):
            return self.subjects(head)
        return []

    def verb_triples(
        self, verb: Token, subjects: list[str], prefix: str, handled_xcomp: set[int]
    ) -> list[RawTriple]:
        passive = self.is_passive(verb)
        pred = prefix + self.predicate(verb, passive)
        out: list[RawTriple] = []
        has_dobj = any(c.dep_ == "dobj" for c in verb.children)
        for child in verb.children:
            dep = child.dep_
            if dep in OBJECT_DEPS:
                p = pred + " to" if dep == "dative" and has_dobj else pred
                for obj in self.fan_out(child):
                    if verb.dep_ == "relcl" and obj.tag_ in ("WDT", "WP") or (
                        verb.dep_ == "relcl" and obj.lower_ == "that"
                    ):
                        objs = self.fan_out(verb.head)
                    else:
                        objs = [obj]
                    for o in objs:
                        out.extend(self._emit(subjects, p, o))
            elif dep in PREP_DEPS:
                prep = "by" if dep == "agent" else child.lower_
                out.extend(self._prep_triples(subjects, pred + " " + prep, child))
            elif dep == "acomp":
                for pp in child.children:
                    if pp.dep_ == "prep":
                        out.extend(self._prep_triples(subjects, f"{pred} {child.lower_} {pp.lower_}", pp))
            elif dep == "xcomp" and child.pos_ in ("VERB", "AUX"):
                handled_xcomp.add(child.i)
                to = " to " if any(c.dep_ == "aux" and c.lower_ == "to" for c in child.children) else " "
                out.extend(self.verb_triples(child, subjects, pred + to, handled_xcomp))
        return out

    def role_triples(self, verb: Token) -> list[RawTriple]:
        """"The editor is Jane Doe" in a passage about T → (T, has editor, jane doe).

        Only for a bare definite role noun ("the (current) editor", no possessor, no "of")
        and a proper-noun complement: the implicit possessor of the role is the title.
        """
        subj = [c for c in verb.children if c.dep_ == "nsubj"]
        if len(subj) != 1:
            return []
        s = subj[0]
        if s.pos_ != "NOUN" or s.i in self.ents or s.lower_ in self.type_nouns:
            return []
        span = self.phrase_span(s)
        if any(
            c.dep_ in ("poss", "prep", "relcl", "acl", "appos") and not span.start <= c.i < span.end
            for c in s.children
        ):
            return []
        if not any(c.dep_ == "det" and c.lower_ == "the" for c in s.lefts):
            return []
        role = normalize_entity(span.text)
        out: list[RawTriple] = []
        for attr in verb.children:
            if attr.dep_ != "attr":
                continue
            for o in self.fan_out(attr):
                if o.pos_ == "PROPN" or o.i in self.ents:
                    arg = self.argument(o)
                    if role and arg and arg != self.title:
                        out.append((self.title, f"has {role}", arg))
        return out

    def _prep_triples(self, subjects: list[str], pred: str, prep: Token) -> list[RawTriple]:
        out: list[RawTriple] = []
        for pobj in prep.children:
            if pobj.dep_ != "pobj":
                continue
            ent = self.ents.get(pobj.i)
            if ent is not None and ent.start <= prep.i < ent.end:
                continue  # "from 1920 to 1924": the "to" is inside the date entity
            for o in self.fan_out(pobj):
                out.extend(self._emit(subjects, pred, o, fold=True))
        return out

    def _emit(self, subjects: list[str], pred: str, obj_tok: Token, fold: bool = True) -> Iterator[RawTriple]:
        """(s, pred, obj) for every subject, plus the noun-prep fold (s, pred obj prep, pobj).

        A one-word common-noun object that folds ("the capital of France") is only
        emitted folded: (X, is capital of, France), not also the empty (X, is, capital).
        """
        obj = self.argument(obj_tok)
        folds: list[RawTriple] = []
        if fold and obj_tok.pos_ == "NOUN" and self.ents.get(obj_tok.i) is None:
            for pp in obj_tok.children:
                if pp.dep_ != "prep":
                    continue
                folded = f"{pred} {obj_tok.lower_} {pp.lower_}"
                for pobj in pp.children:
                    if pobj.dep_ != "pobj":
                        continue
                    for arg in self.args(pobj):
                        folds.extend((s, folded, arg) for s in subjects)
        if obj and not (folds and " " not in obj):
            for s in subjects:
                yield (s, pred, obj)
        yield from folds

    # ------------------------------------------------------- noun-level rules
    def appos_triples(self, appos: Token) -> list[RawTriple]:
        """'X, the Y of Z' → (X, is, Y) + (X, is Y of, Z)."""
        if appos.i + 2 < appos.sent.end and appos.nbor(1).text in HYPHENS and appos.nbor(2).dep_ == "appos":
            return []  # first part of "co - founder"; the last part carries the phrase
        if appos.text in HYPHENS:
            return []
        head = appos.head
        for tok in (head, appos):
            ent = self.ents.get(tok.i)
            if ent is not None and ent.label_ in _NUMERIC_LABELS:
                return []  # "18 April 1883 – 19 January 1963", "Skyy Vodka, 43": not an identity
        if appos.i < self.phrase_span(head).end:
            return []  # merged into the head's argument ("Mobile, Alabama")
        x_tok, y_tok = head, appos
        if head.pos_ == "NOUN" and appos.pos_ == "PROPN":
            x_tok, y_tok = appos, head
        x = self.argument(x_tok)
        if not x:
            return []
        out: list[RawTriple] = []
        y = self.argument(y_tok)
        if y and y != x:
            out.append((x, "is", y))
        if y_tok.pos_ == "NOUN" and self.ents.get(y_tok.i) is None:
            for pp in y_tok.children:
                if pp.dep_ != "prep":
                    continue
                for pobj in pp.children:
                    if pobj.dep_ == "pobj":
                        for o in self.fan_out(pobj):
                            arg = self.argument(o)
                            if arg and y:
                                out.append((x, f"is {y} {pp.lower_}", arg))
        return out

    def poss_triples(self, poss: Token) -> list[RawTriple]:
        """'Z's Y X' → (Z, has Y, X); 'Z's Y' → (Z, has, Y)."""
        z = self.argument(poss)
        head = poss.head
        if not z or head.pos_ not in ("NOUN", "PROPN"):
            return []
        # "Microsoft 's founder Bill Gates": the role noun is a compound of the name
        if head.dep_ == "compound" and head.pos_ == "NOUN" and self.ents.get(head.head.i) is not None:
            name = self.ents[head.head.i]
            if name.start > head.i:
                x = normalize_entity(name.text)
                role = normalize_entity(
                    " ".join(t.text for t in head.doc[poss.i + 1 : name.start] if t.dep_ not in ("case", "punct"))
                )
                if x and role and x != z:
                    return [(z, f"has {role}", x)]
        for child in head.children:
            if child.dep_ == "appos" and child.pos_ == "PROPN":
                x = self.argument(child)
                if x:
                    return [(z, f"has {normalize_entity(self.phrase_span(head).text)}", x)]
        ent = self.ents.get(head.i)
        if ent is not None and ent.start > poss.i + 1:
            between = [t for t in head.doc[poss.i + 1 : ent.start] if t.pos_ == "NOUN"]
            if between:
                role = normalize_entity(" ".join(t.text for t in between))
                x = normalize_entity(ent.text)
                if role and x:
                    return [(z, f"has {role}", x)]
        if poss.pos_ == "PRON" and head.pos_ == "NOUN" and not any(c.dep_ in NAME_MODIFIERS for c in head.lefts):
            return []  # "his time", "its wine": too vague to be a fact
        y = self.argument(head)
        if y and y != z:
            return [(z, "has", y)]
        return []
