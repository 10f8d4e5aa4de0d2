"""FHIR R4 resources of a client's record: a pure mapping from a journey (its entries as corrected,
voided ones left out) and its recorded events to one Bundle of plain JSON.

Per client: Patient (a pseudonymous identifier, the journey id, unless the export may identify the
client), EpisodeOfCare per treatment episode with `statusHistory`, Encounter per service stay and per
session (class AMB for ambulatory levels, IMP for 24-hour ones), Observation per drug-test analyte
(LOINC where the table below knows it) and per ASAM dimension rating, CarePlan and Goal for each
treatment plan, Consent per Part 2 consent. Every resource carries the DS4P security labels:
confidentiality R (restricted), 42CFRPart2, ETH (substance abuse information) and NORDSCLCD (no
redisclosure without consent). The tests validate every resource with `fhir.resources` (R4B models).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid5

from domain.consent import ALL, Consent, ConsentPurpose
from domain.journey import ClientJourney
from domain.levels import Level
from domain.record import OPENERS, STEPS

FHIR_VERSION = "4.0.1"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
SECURITY = [
    {"system": CONFIDENTIALITY, "code": "R", "display": "restricted"},
    {"system": ACT_CODE, "code": "42CFRPart2", "display": "42 CFR Part2"},
    {"system": ACT_CODE, "code": "ETH", "display": "substance abuse information sensitivity"},
    {"system": ACT_CODE, "code": "NORDSCLCD", "display": "no redisclosure without consent directive"},
]
PSEUDONYM_SYSTEM = "urn:care-continuum:journey"
CLIENT_SYSTEM = "urn:care-continuum:client-ref"
LOINC = "http://loinc.org"
ANALYTE_LOINC: dict[str, tuple[str, str]] = {
    "amphetamines": ("19261-7", "Amphetamines [Presence] in Urine by Screen method"),
    "barbiturates": ("19270-8", "Barbiturates [Presence] in Urine by Screen method"),
    "benzodiazepines": ("14316-4", "Benzodiazepines [Presence] in Urine by Screen method"),
    "thc": ("18282-4", "Cannabinoids [Presence] in Urine by Screen method"),
    "benzoylecgonine": ("14314-9", "Benzoylecgonine [Presence] in Urine by Screen method"),
    "opiates": ("19295-5", "Opiates [Presence] in Urine by Screen method"),
    "methadone": ("19550-3", "Methadone [Presence] in Urine by Screen method"),
}
"""Urine screens with a LOINC code; any other analyte (fentanyl, buprenorphine, EtG, ...) is named in `code.text` only."""
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
ASAM_DIMENSIONS = (
    "acute intoxication and/or withdrawal potential", "biomedical conditions and complications",
    "emotional, behavioral or cognitive conditions and complications", "readiness to change",
    "relapse, continued use or continued problem potential", "recovery/living environment",
)
PURPOSE_OF_USE = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
_PURPOSES = {ConsentPurpose.TREATMENT: "TREAT", ConsentPurpose.PAYMENT: "HPAYMT",
             ConsentPurpose.HEALTH_CARE_OPERATIONS: "HOPERAT"}
_KIND_RESOURCES = {
    "demographics": ("Patient",), "episodes": ("EpisodeOfCare",), "stays": ("Encounter",), "sessions": ("Encounter",),
    "discharges": ("Encounter",), "assessments": ("Observation",), "drug_tests": ("Observation",),
    "plans": ("CarePlan", "Goal"), "medication": ("MedicationStatement",),
}
PART2 = "https://www.ecfr.gov/current/title-42/chapter-I/subchapter-A/part-2"


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


class _Builder:
    def __init__(self, journey: ClientJourney, now: datetime) -> None:
        self.journey = journey
        self.now = now
        self.resources: list[dict[str, Any]] = []

    def id(self, kind: str, key: object) -> str:
        return str(uuid5(self.journey.id, f"fhir:{kind}:{key}"))

    def add(self, resource_type: str, key: object, **fields: Any) -> str:  # noqa: ANN401 - FHIR JSON
        resource_id = self.id(resource_type, key)
        self.resources.append({"resourceType": resource_type, "id": resource_id, "meta": {"security": SECURITY}, **fields})
        return f"urn:uuid:{resource_id}"


def bundle(  # noqa: C901, PLR0912, PLR0915 - one pass over the record, one branch per kind of entry
    journey: ClientJourney, events: Sequence[Any], *, identified: bool, kinds: Sequence[str] = (ALL,),
    now: datetime | None = None, notice: str | None = None, consents: Sequence[Consent] | None = None,
) -> dict[str, Any]:
    """The client's Bundle (type collection). `identified`: the Patient carries the client reference, sex and
    year of birth (else the journey id alone). `kinds`: the record kinds included (a consent's scope).
    `notice`: the §2.32 notice, written into the Patient's narrative, for a disclosure. `consents`: the Consent
    resources to include (default every consent; a disclosure shows only the one it is made under)."""
    moment = now or datetime.now(tz=UTC)
    build = _Builder(journey, moment)
    wanted = set(kinds)

    def has(kind: str) -> bool:
        return ALL in wanted or kind in wanted

    entries = journey.entries
    live = {v for v, e in entries.items() if not e.voided}
    by_version = {e.originator_version: e for e in events}
    patient: dict[str, Any] = {"identifier": [{"system": PSEUDONYM_SYSTEM, "value": str(journey.id)}], "active": True}
    if identified and has("demographics"):
        patient["identifier"].append({"system": CLIENT_SYSTEM, "value": journey.client_ref})
        sex = entries[1].fields.get("sex")
        patient["gender"] = {"male": "male", "female": "female", "other": "other"}.get(str(sex), "unknown")
        if journey.birth_year is not None:
            patient["birthDate"] = str(journey.birth_year)
    if notice:
        patient["text"] = {"status": "additional", "div": f'<div xmlns="http://www.w3.org/1999/xhtml"><p>{_xml(notice)}</p></div>'}
    subject = {"reference": build.add("Patient", "patient", **patient)}

    # episodes and stays, from the transitions as corrected
    stays: list[dict[str, Any]] = []  # level, start, end, end_reason, episode
    episodes: dict[int, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    for version in journey.transitions:
        entry = entries[version]
        if entry.type in OPENERS:
            episodes[version] = {"start": entry.at, "end": None, "reason": None}
            current = {"level": Level(str(entry.fields["_level"])), "start": entry.at, "end": None, "reason": None,
                       "episode": version, "opened_by": version}
        elif current is not None and (entry.type in STEPS or entry.type == "Discharged"):
            current["end"] = entry.at
            current["reason"] = (str(entry.fields["reason"]) if entry.type == "Discharged"
                                 else "completed" if entry.type == "SteppedDown" else "transferred")
            stays.append(current)
            if entry.type == "Discharged":
                episodes[current["episode"]].update(end=entry.at, reason=current["reason"])
                current = None
            else:
                current = {"level": Level(str(entry.fields["_level"])), "start": entry.at, "end": None, "reason": None,
                           "episode": current["episode"], "opened_by": version}
    if current is not None:
        stays.append(current)
    episode_refs: dict[int, str] = {}
    if has("episodes"):
        for opener, episode in episodes.items():
            referrals = [entries[v].at for v in sorted(live) if entries[v].type == "ReferralReceived" and entries[v].at <= episode["start"]]
            history = []
            if referrals:
                history.append({"status": "planned", "period": {"start": _instant(referrals[-1]), "end": _instant(episode["start"])}})
            active: dict[str, Any] = {"start": _instant(episode["start"])}
            if episode["end"] is not None:
                active["end"] = _instant(episode["end"])
            history.append({"status": "active", "period": active})
            episode_refs[opener] = build.add(
                "EpisodeOfCare", opener, status="finished" if episode["end"] else "active", statusHistory=history,
                type=[{"text": "substance use disorder treatment"}], patient=subject, period=active,
            )
    stay_refs: dict[int, tuple[str, Level]] = {}
    if has("stays") or has("discharges") or has("sessions"):
        for stay in stays:
            level: Level = stay["level"]
            period = {"start": _instant(stay["start"])} | ({"end": _instant(stay["end"])} if stay["end"] else {})
            fields: dict[str, Any] = {
                "status": "finished" if stay["end"] else "in-progress",
                "class": _class(level), "serviceType": {"text": f"ASAM {level.code} {level.label}"},
                "subject": subject, "period": period,
            }
            if stay["episode"] in episode_refs:
                fields["episodeOfCare"] = [{"reference": episode_refs[stay["episode"]]}]
            if stay["reason"] and (has("discharges") or has("stays")):
                fields["hospitalization"] = {"dischargeDisposition": {"text": stay["reason"]}}
            stay_refs[stay["opened_by"]] = (build.add("Encounter", f"stay:{stay['opened_by']}", **fields), level)

    def stay_of(at: datetime) -> tuple[str, Level] | None:
        found = None
        for stay in stays:
            if stay["start"] <= at and (stay["end"] is None or at <= stay["end"]) and stay["opened_by"] in stay_refs:
                found = stay_refs[stay["opened_by"]]
        return found

    for version in sorted(live):
        entry = entries[version]
        event = by_version.get(version)
        if entry.type in ("SessionAttended", "SessionMissed") and has("sessions"):
            minutes = int(float(str(entry.fields.get("minutes") or 0)))
            within = stay_of(entry.at)
            fields = {
                "status": "finished" if entry.type == "SessionAttended" else "cancelled",
                "class": _class(within[1] if within else Level.OUTPATIENT),
                "subject": subject, "period": {"start": _instant(entry.at), "end": _instant(entry.at + timedelta(minutes=minutes))},
                "length": {"value": minutes, "unit": "min", "system": "http://unitsofmeasure.org", "code": "min"},
            }
            if within:
                fields["partOf"] = {"reference": within[0]}
            build.add("Encounter", f"session:{version}", **fields)
        elif entry.type == "DrugTestResulted" and has("drug_tests") and event is not None:
            collected = entries.get(journey.specimens.get(str(entry.key), -1))
            result = str(entry.fields.get("result"))
            for analyte, value in sorted(event.substances.items()):
                if result != str(event.result.value):  # the overall result was corrected: an analyte's value is not known
                    continue
                code: dict[str, Any] = {"text": analyte}
                if analyte in ANALYTE_LOINC:
                    loinc, display = ANALYTE_LOINC[analyte]
                    code["coding"] = [{"system": LOINC, "code": loinc, "display": display}]
                positive = value == "positive"
                build.add(
                    "Observation", f"analyte:{version}:{analyte}", status="final",
                    category=[{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
                    code=code, subject=subject, effectiveDateTime=_instant(collected.at if collected else entry.at),
                    issued=_instant(entry.at), valueCodeableConcept={"text": value},
                    interpretation=[{"coding": [{"system": INTERPRETATION, "code": "POS" if positive else "NEG"}]}],
                    note=[{"text": "expected medication"}] if analyte in event.expected_medications else [],
                )
        elif entry.type == "AssessmentCompleted" and has("assessments") and event is not None:
            for number, rating in enumerate(event.ratings, start=1):
                build.add(
                    "Observation", f"asam:{version}:{number}", status="final",
                    category=[{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "survey"}]}],
                    code={"text": f"ASAM dimension {number}: {ASAM_DIMENSIONS[number - 1]} (risk rating 0-4)"},
                    subject=subject, effectiveDateTime=_instant(entry.at), valueInteger=int(rating),
                )
        elif entry.type == "TreatmentPlanRecorded" and has("plans"):
            goals = [
                {"reference": build.add("Goal", f"goal:{version}:{n}", lifecycleStatus="active",
                                        description={"text": goal}, subject=subject, startDate=entry.at.date().isoformat())}
                for n, goal in enumerate(entry.notes)
            ]
            build.add("CarePlan", f"plan:{version}", status="active", intent="plan", subject=subject,
                      created=_instant(entry.at), period={"start": _instant(entry.at)}, goal=goals)
    for consent in journey.consents() if consents is None else consents:
        build.add("Consent", f"consent:{consent.consent_id}", **_consent(consent, subject, moment))
    return {
        "resourceType": "Bundle", "id": build.id("Bundle", "everything"), "meta": {"security": SECURITY},
        "type": "collection", "timestamp": _instant(moment),
        "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in build.resources],
    }


def _class(level: Level) -> dict[str, str]:
    if level.is_24_hour:
        return {"system": ACT_CODE, "code": "IMP", "display": "inpatient encounter"}
    return {"system": ACT_CODE, "code": "AMB", "display": "ambulatory"}


def _consent(consent: Consent, subject: dict[str, str], now: datetime) -> dict[str, Any]:
    status = "entered-in-error" if consent.voided else "active" if consent.in_force(now) else "inactive"
    purpose = ({"system": PURPOSE_OF_USE, "code": _PURPOSES[consent.purpose]} if consent.purpose in _PURPOSES
               else {"display": consent.purpose_text or consent.purpose.value})
    provision: dict[str, Any] = {
        "type": "permit",
        "period": {"start": _instant(consent.granted_at)},
        "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]},
                   "reference": {"display": consent.recipient}}],
        "purpose": [purpose],
    }
    end = consent.revoked_at or (datetime.combine(consent.expires_on, datetime.max.time(), UTC) if consent.expires_on else None)
    if end is not None:
        provision["period"]["end"] = _instant(end)
    if ALL not in consent.scope:
        provision["class"] = [{"system": "http://hl7.org/fhir/resource-types", "code": resource}
                              for kind in consent.scope for resource in _KIND_RESOURCES[kind]]
    return {
        "status": status,
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": LOINC, "code": "59284-0", "display": "Patient Consent"}]}],
        "patient": subject, "dateTime": _instant(consent.granted_at),
        "policy": [{"uri": PART2}], "provision": provision,
    }


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def validate(document: dict[str, Any]) -> None:
    """Parse the Bundle and every resource with `fhir.resources`' R4B models (R4's, for these resources): raises when invalid."""
    from fhir.resources.R4B import get_fhir_model_class

    get_fhir_model_class("Bundle").parse_obj(document)
    for item in document.get("entry", []):
        resource = item["resource"]
        get_fhir_model_class(resource["resourceType"]).parse_obj(resource)


__all__ = ["SECURITY", "bundle", "validate"]
