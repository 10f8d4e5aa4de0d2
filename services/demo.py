"""A synthetic one-year cohort of client journeys, as import command lines (`continuum demo`).

Rates and lengths of stay follow shared/notes/domain.md section 7 ("Synthetic one-year cohort");
IOP dose, tracks, groups, therapies and plan goals follow section 1, discharge-reason mixes and
median stays the TEDS 2004 figures of section 3. Each client's timeline is generated whole, cut at
`end` (a journey still open then is part of the census) and numbered, so a command's position is its
journey version and its id is stable across re-imports.

The cohort is a function of its size, seed and window only, never of the day it is generated: the
default window is the calendar year 2025 (`DEFAULT_START`..`DEFAULT_END`). Every command id names
the cohort (`demo-SEED-CLIENTS-START-END-CLIENT-N`), so two cohorts never share an id and a store that
holds one cohort is recognised (`other_cohort`) before another is recorded into it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from operator import itemgetter
from random import Random
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from services.journeys import CareContinuum

DEFAULT_START = date(2025, 1, 1)
DEFAULT_END = date(2025, 12, 31)
WINDOW_DAYS = 365  # with only one end of the window given, the other is a year away

DAY = timedelta(days=1)
SITES = ("north", "south", "east")
ENTRY = {"WM": 20, "RES": 15, "2.5": 10, "2.1": 40, "1": 15}
WM_LEVELS = {"3.7-WM": 70, "3.2-WM": 15, "1-WM": 15}
RES_LEVELS = {"3.5": 70, "3.1": 15, "3.7": 15}
MEDICATION = {"buprenorphine": 20, "methadone": 5, "naltrexone": 5, "none": 70}
ANALYTE = {"fentanyl": "fentanyl", "heroin": "opiates", "alcohol": "etg", "methamphetamine": "amphetamines",
           "cocaine": "benzoylecgonine", "cannabis": "thc"}
HOURS = {"1": 3.0, "2.1": 9.0, "2.5": 20.0, "3.1": 10.0, "3.5": 25.0, "3.7": 30.0}
AMBULATORY = ("1", "2.1", "2.5")
GOALS = ("abstinence", "triggers", "support system", "employment", "housing")
GROUP_TYPES = ("relapse_prevention", "skill_building", "codependency", "family", "education", "process")
MODALITIES = ("cbt", "mi", "matrix", "twelve_step_facilitation")
ACTIVITIES = ("alumni meeting", "sober social", "peer mentoring", "recovery walk")
SOURCES = {"self": 28, "family": 10, "court": 20, "hospital": 12, "detox": 5, "residential": 3,
           "outpatient": 10, "employer": 4, "other": 8}
_IOP = {"completed": 38, "transferred": 18, "left_against_advice": 23, "terminated_by_facility": 14,
        "incarcerated": 2, "died": 0.5, "other": 4.5}
REASONS = {  # discharge reasons by level group, % (domain.md sections 3 and 7)
    "WM": {"completed": 62.3, "transferred": 13.6, "left_against_advice": 16.4, "terminated_by_facility": 2.1,
           "other": 5.6},
    "RES": {"completed": 61.5, "transferred": 14.3, "left_against_advice": 14.1, "terminated_by_facility": 6.3,
            "other": 3.9},
    "2.5": _IOP, "2.1": _IOP,
    "1": {"completed": 36.4, "transferred": 11.7, "left_against_advice": 27.2, "terminated_by_facility": 10.5,
          "incarcerated": 2, "died": 0.5, "other": 11.7},
}
STEP_DOWN = {"WM": (0.6, {"3.5": 35, "2.5": 20, "2.1": 45}), "RES": (0.7, {"2.5": 35, "2.1": 65}),
             "2.5": (0.75, {"2.1": 100}), "2.1": (0.6, {"1": 100})}  # IOP: share of completers
STEP_UP = {"2.1": (0.08, {"2.5": 60, "3.5": 40}), "1": (0.05, {"2.1": 80, "2.5": 20})}
LOS = {  # (low, high, mode) days for triangular draws: completed / dropped out / other endings
    "RES": ((14, 35, 24), (1, 21, 5), (2, 30, 10)),
    "2.5": ((14, 35, 20), (2, 21, 7), (3, 28, 12)),
    "2.1": ((50, 90, 90), (4, 70, 14), (7, 90, 25)),  # medians ~78 / 26 / 38
    "1": ((60, 180, 90), (7, 120, 30), (7, 120, 30)),  # medians ~106 / 49
}

Event = tuple[datetime, dict[str, Any]]


@dataclass
class _Client:
    ref: str
    rng: Random
    end: datetime
    site: str
    track: str
    medication: str
    substance: str
    family: bool
    events: list[Event] = field(default_factory=list)
    admitted: datetime | None = None
    died: datetime | None = None
    stepped_up: bool = False
    sessions: int = 0
    specimens: int = 0

    def add(self, at: datetime, command: str, **fields: Any) -> None:  # noqa: ANN401
        self.events.append((at, {"command": command, "client": self.ref, **fields}))


def cohort_window(start: str | None, end: str | None, now: datetime) -> tuple[datetime, datetime]:
    """The window of `continuum demo --start DAY --end DAY`: from the start of the first day to the end of
    the last (UTC). Both left out: the calendar year 2025, whatever the date. `end` may be `today`; a
    window that reaches today ends at `now`, as the journey refuses clinical times in the future."""
    today = now.astimezone(UTC).date()
    first = _day("--start", start) if start is not None else None
    last = today if end == "today" else _day("--end", end) if end is not None else None
    if first is None:
        first = DEFAULT_START if last is None else last - timedelta(days=WINDOW_DAYS - 1)
    if last is None:
        last = DEFAULT_END if start is None else min(first + timedelta(days=WINDOW_DAYS - 1), today)
    if last > today:
        msg = f"--end {last} is after today ({today}): the demo records only what has happened (use --end today)"
        raise ValueError(msg)
    if first > last:
        msg = f"--start {first} is after the end of the window ({last})"
        raise ValueError(msg)
    opened = datetime.combine(first, time.min, tzinfo=UTC)
    closed = datetime.combine(last, time(23, 59, 59), tzinfo=UTC)
    return opened, min(closed, now.astimezone(UTC).replace(microsecond=0))


def _day(option: str, text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        msg = f"{option} {text!r} is not a date (YYYY-MM-DD)"
        raise ValueError(msg) from None


def cohort_key(clients: int, seed: int, start: datetime, end: datetime) -> str:
    """What names a cohort in its command ids: seed, size and window (`7-1000-20250101-20251231T235959`)."""
    return f"{seed}-{clients}-{_stamp(start)}-{_stamp(end)}"


def _stamp(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return f"{moment:%Y%m%d}" if moment.time() == time.min else f"{moment:%Y%m%dT%H%M%S}"


_KEY = re.compile(r"demo-(?P<seed>-?\d+)-(?P<clients>\d+)-(?P<start>\d{8}(?:T\d{6})?)-(?P<end>\d{8}(?:T\d{6})?)-")


def describe(key: str) -> str:
    """A cohort key in words: `seed 7, 1000 clients, 2025-01-01 00:00 to 2025-12-31 23:59 UTC`."""
    found = _KEY.match(f"demo-{key}-")
    if found is None:
        return key

    def moment(stamp: str) -> str:
        parsed = datetime.strptime(stamp, "%Y%m%dT%H%M%S" if "T" in stamp else "%Y%m%d")  # noqa: DTZ007 - UTC
        return f"{parsed:%Y-%m-%d %H:%M}"

    return (f"seed {found['seed']}, {found['clients']} clients,"
            f" {moment(found['start'])} to {moment(found['end'])} UTC")


def other_cohort(app: CareContinuum, clients: int, seed: int, start: datetime, end: datetime) -> str | None:
    """Why this cohort may not be recorded into the store of `app`, in one line; None when the store is
    empty or holds this very cohort (recording it again is then a no-op: every id is already applied).

    The first and the last event recorded are checked: a demo goes into an empty store, so a store
    whose first or last event is not this cohort's holds something else."""
    ours = cohort_key(clients, seed, start, end)
    last = app.recorder.max_notification_id()
    if not last:
        return None
    for position in sorted({1, last}):
        notifications = app.recorder.select_notifications(start=position, limit=1)
        if not notifications:
            continue
        command_id = str(getattr(app.mapper.to_domain_event(notifications[0]), "command_id", ""))
        if command_id.startswith(f"demo-{ours}-"):
            continue
        found = _KEY.match(command_id)
        this = f"this demo is {describe(ours)}"
        if found is not None:
            theirs = describe(command_id[len("demo-"):found.end() - 1])
            return (f"the store already holds another demo cohort ({theirs}); {this}: record it into an empty"
                    " store (--database-url) or repeat the options of the cohort recorded")
        return (f"the store already holds events that are not this demo's (up to position {last}); {this}:"
                " record it into an empty store (--database-url)")
    return None


def generate_cohort(clients: int, seed: int, *, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Commands for `clients` journeys starting between `start` and `end`, sorted by occurred_at."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    key = cohort_key(clients, seed, start, end)
    rng = Random(seed)
    timeline: list[Event] = []
    for number in range(1, clients + 1):
        timeline.extend(_client_timeline(f"C-{number:05d}", Random(rng.getrandbits(64)), key, start, end))
    timeline.sort(key=itemgetter(0))  # stable: ties keep each client's own order
    return [command for _, command in timeline]


def cohort_lines(clients: int, seed: int, *, start: datetime, end: datetime) -> Iterator[str]:
    """One compact JSON line per command, for `continuum demo --write FILE`."""
    for command in generate_cohort(clients, seed, start=start, end=end):
        yield json.dumps(command, separators=(",", ":"))


def _client_timeline(ref: str, rng: Random, key: str, start: datetime, end: datetime) -> list[Event]:
    medication = _pick(rng, MEDICATION)
    opioid = medication in ("buprenorphine", "methadone") or (medication == "naltrexone" and rng.random() < 0.5)
    substance = rng.choice(("fentanyl", "heroin")) if opioid else _pick(
        rng, {"alcohol": 45, "methamphetamine": 20, "cocaine": 15, "cannabis": 10, "fentanyl": 10})
    track = "day" if rng.random() < 0.6 else "evening"
    c = _Client(ref, rng, end, rng.choice(SITES), track, medication, substance, family=rng.random() < 0.5)
    step: tuple[str, datetime, bool] | None = _intake(c, start)
    while step is not None:
        step = _detox(c, step[0], step[1]) if step[0].endswith("-WM") else _stay(c, *step)
    events = [(at, cmd) for at, cmd in sorted(c.events, key=itemgetter(0)) if at <= end
              and not (c.died and cmd["command"] == "result_drug_test" and at >= c.died)]
    _maybe_correct(c, events)
    return [(at, {"id": f"demo-{key}-{ref}-{n}", **cmd, "occurred_at": at.isoformat().replace("+00:00", "Z")})
            for n, (at, cmd) in enumerate(sorted(events, key=itemgetter(0)), start=1)]


def _intake(c: _Client, start: datetime) -> tuple[str, datetime, bool]:
    """Register, refer and assess; returns the entry level and time."""
    rng = c.rng
    days = max(1, (c.end - start).days)
    at = min(c.end, max(start, _midnight(start) + timedelta(days=rng.randrange(days), hours=rng.randint(8, 16))))
    age = rng.randint(13, 17) if rng.random() < 0.05 else rng.randint(18, 30) if rng.random() < 0.42 else rng.randint(31, 70)
    c.add(at, "register", site=c.site, birth_year=at.year - age, sex=_pick(rng, {"female": 40, "male": 58, "other": 1,
                                                                                  "unknown": 1}))
    group = _pick(rng, ENTRY)
    level = _pick(rng, WM_LEVELS) if group == "WM" else _pick(rng, RES_LEVELS) if group == "RES" else group
    c.add(at + timedelta(minutes=rng.randint(5, 60)), "refer", source=_pick(rng, SOURCES),
          **({"referred_level": level} if rng.random() < 0.5 else {}))
    at += timedelta(days=rng.randint(0, 2), hours=rng.randint(1, 4))
    c.add(at, "assess", ratings=_ratings(rng, group), recommended_level=level, clinician=f"clinician-{rng.randint(1, 12):02d}")
    wait = timedelta(hours=rng.randint(1, 6)) if group == "WM" else _midnight(at) - at + timedelta(
        days=rng.randint(1, 7), hours=rng.randint(13, 15), minutes=rng.randint(0, 59))
    return level, at + wait, True


def _ratings(rng: Random, group: str) -> list[int]:
    base = {"WM": 3, "RES": 3, "2.5": 2, "2.1": 2, "1": 1}[group]
    ratings = [min(4, max(0, base + rng.randint(-1, 1))) for _ in range(6)]
    ratings[0] = rng.randint(3, 4) if group == "WM" else min(ratings[0], 1)
    return ratings


def _detox(c: _Client, level: str, since: datetime) -> tuple[str, datetime, bool] | None:
    """Withdrawal management for 3-7 days, then a step down (60%) or a discharge."""
    rng = c.rng
    c.add(since, "start_detox", level=level, site=c.site, substances=[c.substance])
    c.admitted = since
    _plan(c, since)
    until = _midnight(since) + timedelta(days=rng.randint(3, 7), hours=rng.randint(9, 12), minutes=rng.randint(0, 59))
    _tests(c, level, since, until)
    leave = until + timedelta(hours=rng.randint(1, 3))
    if rng.random() < STEP_DOWN["WM"][0]:
        c.add(until, "complete_detox", completed=True)
        target = _pick(rng, STEP_DOWN["WM"][1])
        c.add(leave, "step_down", to_level=target, reason="withdrawal management completed", **_placement(c, target))
        return target, leave, False
    reason = _pick(rng, REASONS["WM"])
    c.add(until, "complete_detox", completed=reason in ("completed", "transferred"))
    _discharge(c, leave, reason)
    return None


def _stay(c: _Client, level: str, since: datetime, first: bool) -> tuple[str, datetime, bool] | None:
    """One level of care: admission (if first), plan, sessions, tests, then a step or a discharge."""
    rng = c.rng
    if first:
        c.add(since, "admit", level=level, site=c.site, **_placement(c, level), medication=c.medication,
              expected_end=(since + timedelta(days={"1": 112, "2.1": 84, "2.5": 21}.get(level, 28))).date().isoformat())
        c.admitted = since
    _plan(c, since)
    kind, target, days = _exit(c, level)
    until = _midnight(since) + timedelta(days=max(1, round(days)), hours=rng.randint(11, 16), minutes=rng.randint(0, 59))
    trouble = None
    if target == "left_against_advice":
        trouble = ("dropout", until - 21 * DAY)
    elif kind == "step_up":
        trouble = ("absences" if level == "2.1" and rng.random() < 0.5 else "positives", until - 14 * DAY)
    _sessions(c, level, since, until, trouble)
    _tests(c, level, since, until)
    if trouble and trouble[0] == "positives":
        for before in (10, 4):
            _collect(c, until - before * DAY, is_random=False, positive=True)
    if kind == "discharge":
        _discharge(c, until, target)
        return None
    reason = "treatment goals met at this level"
    if trouble:
        reason = "3 unexcused absences in 14 days" if trouble[0] == "absences" else "2 positive tests in 14 days"
    c.add(until, kind, to_level=target, reason=reason, **_placement(c, target))
    return target, until, False


def _exit(c: _Client, level: str) -> tuple[str, str, float]:
    """How the stay at `level` ends: (step_up | step_down | discharge, level or reason, days)."""
    rng, group = c.rng, "RES" if level.startswith("3") else level
    done, dropout, other = LOS[group]
    if group in STEP_UP and not c.stepped_up and rng.random() < STEP_UP[group][0]:
        c.stepped_up = True
        return "step_up", _pick(rng, STEP_UP[group][1]), rng.uniform(14, 56)
    if group in ("RES", "2.5") and rng.random() < STEP_DOWN[group][0]:
        return "step_down", _pick(rng, STEP_DOWN[group][1]), rng.triangular(*done)
    reason = _pick(rng, REASONS[group])
    days = rng.triangular(*(done if reason == "completed" else dropout if reason == "left_against_advice" else other))
    if reason == "completed" and group == "2.1" and rng.random() < STEP_DOWN["2.1"][0]:
        return "step_down", "1", days
    return "discharge", reason, days


def _placement(c: _Client, level: str) -> dict[str, Any]:
    if level in AMBULATORY:
        return {"track": "day" if level == "2.5" else c.track, "planned_hours_per_week": HOURS[level]}
    return {"planned_hours_per_week": HOURS[level]}  # 24-hour levels: the domain picks the residential track


def _plan(c: _Client, since: datetime) -> None:
    at = since + timedelta(hours=c.rng.randint(1, 3))
    goals = c.rng.sample(GOALS, c.rng.randint(2, 4))
    c.add(at, "plan", goals=goals, review_on=(at + 30 * DAY).date().isoformat())


def _schedule(c: _Client, level: str) -> list[tuple[int, str, int, int]]:
    """(weekday, kind, minutes, UTC hour) of the weekly sessions at `level`; half the clients add family sessions."""
    evening = c.track == "evening"
    if level == "1":
        days = (1, 3) if c.rng.random() < 0.6 else (1,)
        return [(d, "individual" if c.rng.random() < 0.6 else "group", c.rng.choice((60, 75, 90)), 17 if evening else 10)
                for d in days]
    family = [(1, "family", 60, 16 if evening else 13)] if c.family else []
    if level == "2.1":  # Mon/Wed/Fri 3-hour groups on the client's track, one individual session
        groups = [(d, "group", 180, 18 if evening else 9) for d in (0, 2, 4)]
        return [*groups, (3, "individual", 60, 16 if evening else 13), *family]
    if level == "2.5":
        return [*((d, "group", 240, 9) for d in range(5)), (2, "individual", 60, 14), *family]
    groups = [(d, "group", 90, hour) for d in range(5) for hour in (10, 15)]  # residential: two groups a weekday
    return [*groups, (2, "individual", 60, 13), *family]


def _sessions(c: _Client, level: str, since: datetime, until: datetime, trouble: tuple[str, datetime] | None) -> None:
    rng, slots = c.rng, _schedule(c, level)
    day, stop = _midnight(since) + DAY, min(until, c.end)
    while day < stop:
        for weekday, kind, minutes, hour in slots:
            at = day + timedelta(hours=hour)
            if weekday != day.weekday() or at >= until:
                continue
            bad = trouble is not None and trouble[0] != "positives" and at >= trouble[1]
            c.sessions += 1
            session = {"session_id": f"S{c.sessions:04d}", "minutes": minutes, "kind": kind}
            if rng.random() < (0.85 if not bad else 0.4 if trouble and trouble[0] == "dropout" else 0.25):
                therapy = {"group_type": rng.choice(GROUP_TYPES)} if kind == "group" else {}
                c.add(at, "attend_session", **session, **therapy, modality=rng.choice(MODALITIES),
                      telehealth=kind != "group" and rng.random() < 0.15)
            else:
                c.add(at, "miss_session", **session, excused=not bad and rng.random() < 0.35)
        day += DAY


def _tests(c: _Client, level: str, since: datetime, until: datetime) -> None:
    """Random tests: weekly for the first 30 days at a level, then twice monthly; monthly in OP."""
    rng, offset = c.rng, 0
    while True:
        period = 30 if level == "1" else 7 if offset < 30 else 15
        at = _midnight(since) + timedelta(days=offset + rng.randint(1, period), hours=rng.randint(8, 16),
                                          minutes=rng.randint(0, 59))
        if at >= until or at > c.end:
            return
        _collect(c, at)
        offset += period


def _collect(c: _Client, at: datetime, *, is_random: bool = True, positive: bool = False) -> None:
    """A collection and its result 1-5 days later (late results are part of the picture)."""
    rng = c.rng
    c.specimens += 1
    specimen_id = f"{c.ref}-U{c.specimens:03d}"
    c.add(at, "collect_drug_test", specimen_id=specimen_id, specimen="urine" if rng.random() < 0.9 else "oral_fluid",
          observed=rng.random() < 0.3, random=is_random)
    early = c.admitted is not None and at - c.admitted < 30 * DAY
    roll, rate = rng.random(), 0.25 if early else 0.12
    result = "positive" if positive or roll < rate else "dilute" if roll < rate + 0.03 else (
        "refused" if roll < rate + 0.05 else "negative")
    mat = [c.medication] if c.medication in ("buprenorphine", "methadone") and result in ("positive", "negative") else []
    substances = {ANALYTE[c.substance]: result} if result in ("positive", "negative") else {}
    lag = timedelta(days=rng.choices((1, 2, 3, 4, 5), weights=(45, 25, 15, 10, 5))[0], hours=rng.randint(0, 6))
    c.add(at + lag, "result_drug_test", specimen_id=specimen_id, result=result,
          substances=substances | dict.fromkeys(mat, "positive"), expected_medications=mat)


def _discharge(c: _Client, at: datetime, reason: str) -> None:
    rng = c.rng
    onward = {"transferred": "county treatment program", "completed": "mutual-help group"}.get(reason)
    c.add(at, "discharge", reason=reason, **({"referral_onward": onward} if onward else {}))
    if reason == "died":
        c.died = at
    if reason == "completed" and rng.random() < 0.4:
        at += timedelta(days=rng.randint(1, 14))
        c.add(at, "enrol_alumni", program="alumni")
        while (at := at + timedelta(days=rng.randint(20, 40))) <= c.end:
            c.add(at, "attend_alumni_activity", activity=rng.choice(ACTIVITIES))


def _maybe_correct(c: _Client, events: list[Event]) -> None:
    """About 2% of clients: the entry admission was recorded at the wrong site or on the wrong track."""
    rng = c.rng
    entry = next((i for i, (_, cmd) in enumerate(events) if cmd["command"] in ("admit", "start_detox")), None)
    if rng.random() >= 0.02 or entry is None:
        return
    at, command = events[entry]
    when = at + timedelta(days=rng.randint(1, 10), hours=rng.randint(0, 8))
    if when > c.end:
        return
    name = "track" if command.get("track") in ("day", "evening") and rng.random() < 0.5 else "site"
    right = command[name]
    command[name] = rng.choice([v for v in (("day", "evening") if name == "track" else SITES) if v != right])
    events.append((when, {"command": "correct", "client": c.ref, "corrects_version": entry + 1, "field": name,
                          "value": right, "reason": f"admission entered with the wrong {name}"}))


def _pick(rng: Random, weights: Mapping[str, float]) -> str:
    return rng.choices(tuple(weights), weights=tuple(weights.values()))[0]


def _midnight(at: datetime) -> datetime:
    return at.replace(hour=0, minute=0, second=0, microsecond=0)
