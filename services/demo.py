"""A synthetic one-year cohort of client journeys, as import command lines (`continuum demo`).

The cohort is calibrated against TEDS-D 2004 as `continuum report fidelity` measures it, per service
stay (a step down ends a stay `completed`, a step up `transferred`, a discharge with its own reason):
the end-reason mix of each level group is `REASONS`, and the median IOP stay is about 41 days. Each
stay's end reason is chosen first and then realised: `completed` as a step down to the next level or a
discharge completed, `transferred` as a step up or a discharge transferred, any other reason as a
discharge with it. A stay still open when the window ends is not counted, and a long stay is cut more
often than a short one, so each reason is weighted by the inverse of the chance that a stay with it,
begun when this one begins, ends inside the window: among the stays that end, the mix is TEDS's.
Lengths of stay are triangular per level group and end reason (`LOS`). Reasons are dealt from a
low-discrepancy sequence (`_Deal`) rather than drawn independently, so a cohort of a few thousand
clients is within a point or so of the table, not within sampling noise of it.

Around that: clients who are referred and assessed and do not come (one in eight, half of them
referred again weeks later); readmissions (about a fifth of the discharged clients come back, nearly
half of those within 30 days, through a new referral and assessment into a new episode); medication
for addiction treatment recorded from the first level of care (`medication` on `start_detox` and
`admit`) and started, switched or stopped during stays (`change_medication`); IOP schedules that taper
from three groups a week to two (9 to 6 planned hours, `change_track`) in the last weeks before a
completion, and now and then a move between the day and evening tracks; attendance that differs from
client to client, falls away before a client leaves, is terminated or is stepped up, has excused
absences, and stops on the programme's holidays; random drug tests with results 1-5 days late and the
client's own medication as an expected positive. IOP dose, tracks, groups and therapies follow ASAM
(three 3-hour groups a week on a day or evening track, one individual session, family sessions for
half the clients).

Each client's timeline is generated whole, cut at `end` (a journey still open then is part of the
census) and numbered, so a command's position is its journey version and its id is stable across
re-imports. The cohort is a function of its size, seed and window only, never of the day it is
generated: the default window is the calendar year 2025 (`DEFAULT_START`..`DEFAULT_END`). Every
command id names the cohort (`demo-SEED-CLIENTS-START-END-CLIENT-N`), so two cohorts never share an id
and a store that holds one cohort is recognised (`other_cohort`) before another is recorded into it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from math import sqrt
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
RETURN_ENTRY = {"WM": 35, "RES": 20, "2.5": 10, "2.1": 30, "1": 5}  # where a readmission begins
WM_LEVELS = {"3.7-WM": 70, "3.2-WM": 15, "1-WM": 15}
RES_LEVELS = {"3.5": 70, "3.1": 15, "3.7": 15}
MEDICATION = {"buprenorphine": 20, "methadone": 5, "naltrexone": 5, "none": 70}
ANALYTE = {"fentanyl": "fentanyl", "heroin": "opiates", "alcohol": "etg", "methamphetamine": "amphetamines",
           "cocaine": "benzoylecgonine", "cannabis": "thc"}
HOURS = {"1": 3.0, "2.1": 9.0, "2.5": 20.0, "3.1": 10.0, "3.5": 25.0, "3.7": 30.0, "4": 30.0}
TAPER_HOURS = 6.0  # IOP in its last weeks: two groups a week instead of three
AMBULATORY = ("1", "2.1", "2.5")
GOALS = ("abstinence", "triggers", "support system", "employment", "housing")
GROUP_TYPES = ("relapse_prevention", "skill_building", "codependency", "family", "education", "process")
MODALITIES = ("cbt", "mi", "matrix", "twelve_step_facilitation")
ACTIVITIES = ("alumni meeting", "sober social", "peer mentoring", "recovery walk")
SOURCES = {"self": 28, "family": 10, "court": 20, "hospital": 12, "detox": 5, "residential": 3,
           "outpatient": 10, "employer": 4, "other": 8}
RETURN_SOURCES = {"self": 40, "family": 12, "court": 15, "hospital": 15, "outpatient": 10, "other": 8}
_IOP = {"completed": 38, "transferred": 18, "left_against_advice": 23, "terminated_by_facility": 14,
        "incarcerated": 2, "died": 0.5, "other": 4.5}
REASONS = {  # TEDS-D 2004: how service stays end, % per level group (WM, residential, PHP and IOP, outpatient)
    "WM": {"completed": 62.3, "transferred": 13.6, "left_against_advice": 16.4, "terminated_by_facility": 2.1,
           "other": 5.6},
    "RES": {"completed": 61.5, "transferred": 14.3, "left_against_advice": 14.1, "terminated_by_facility": 6.3,
            "other": 3.9},
    "2.5": _IOP, "2.1": _IOP,
    "1": {"completed": 36.4, "transferred": 11.7, "left_against_advice": 27.2, "terminated_by_facility": 10.5,
          "incarcerated": 2, "died": 0.5, "other": 11.7},
}
IOP_MEDIAN_DAYS = 41  # TEDS-D 2004: median length of an IOP stay
LOS = {  # (low, high, mode) days of a stay per level group and end reason ("other": every reason not named)
    "WM": {"completed": (3, 8, 4), "transferred": (1, 5, 2), "left_against_advice": (1, 4, 1), "other": (1, 5, 2)},
    "RES": {"completed": (14, 35, 26), "transferred": (3, 28, 10), "left_against_advice": (1, 21, 5), "other": (2, 30, 10)},
    "2.5": {"completed": (14, 35, 20), "transferred": (3, 28, 10), "left_against_advice": (2, 21, 7), "other": (3, 28, 12)},
    "2.1": {"completed": (35, 90, 56), "transferred": (7, 56, 21), "left_against_advice": (3, 60, 10), "other": (7, 84, 21)},
    "1": {"completed": (60, 180, 90), "transferred": (14, 120, 45), "left_against_advice": (7, 120, 30), "other": (7, 120, 30)},
}
STEP_DOWN = {  # a stay ended `completed`: the share that steps down (the rest are discharged completed), and where to
    "WM": (0.8, {"3.5": 35, "2.5": 20, "2.1": 45}), "RES": (0.8, {"2.5": 35, "2.1": 65}),
    "2.5": (0.85, {"2.1": 100}), "2.1": (0.6, {"1": 100}),
}
STEP_UP = {  # a stay ended `transferred`: the share that steps up (the rest are discharged transferred), and where to
    "1-WM": (0.5, {"3.2-WM": 30, "3.7-WM": 70}), "3.2-WM": (0.5, {"3.7-WM": 100}), "3.7-WM": (0.4, {"4-WM": 100}),
    "3.1": (0.5, {"3.5": 100}), "3.5": (0.5, {"3.7": 100}), "3.7": (0.4, {"4": 100}),
    "2.5": (0.6, {"3.5": 70, "3.7": 30}), "2.1": (0.7, {"2.5": 60, "3.5": 40}), "1": (0.6, {"2.1": 80, "2.5": 20}),
}
MAX_STAYS = 6  # stays in an episode; the last one ends in a discharge, with the reason drawn for it
READMISSION = {"completed": 0.12, "transferred": 0.15, "left_against_advice": 0.3, "terminated_by_facility": 0.25,
               "incarcerated": 0.15, "other": 0.2}  # chance of coming back after a discharge for each reason
SOON = 0.45  # of the clients who come back, the share that comes back within 30 days
MAX_EPISODES = 4
NO_SHOW = 0.12  # a referral and assessment not followed by an admission
CUT_FLOOR = 0.02  # a reason that can hardly end inside the window is weighted up at most 1/CUT_FLOOR times

GOLDEN = 0.6180339887498949  # the step of the low-discrepancy sequence end reasons are dealt from

Event = tuple[datetime, dict[str, Any]]


class _Deal:
    """End reasons dealt to the cohort's stays from low-discrepancy sequences (Weyl sequences with the golden
    ratio, each begun at a point drawn from the seed) instead of independent draws: a few hundred stays of a
    group then match the table far more closely than chance would. One sequence per stream: a level group and
    the month of window left when the stay begins (the weights change with it). Clients take them in turn."""

    def __init__(self, rng: Random) -> None:
        self.rng = rng
        self.point: dict[tuple[str, int], float] = {}

    def pick(self, stream: tuple[str, int], weights: Mapping[tuple[str, bool], float]) -> tuple[str, bool]:
        point = self.point[stream] if stream in self.point else self.rng.random()
        self.point[stream] = (point + GOLDEN) % 1.0
        mark, total = point * sum(weights.values()), 0.0
        for cell, weight in weights.items():
            total += weight
            if mark < total:
                return cell
        return cell  # only when rounding leaves the mark at the very end: the last cell


@dataclass
class _Client:
    ref: str
    rng: Random
    deal: _Deal
    end: datetime
    site: str
    track: str
    medication: str  # in force now; `meds` keeps each change
    substance: str
    opioid: bool
    family: bool
    attendance: float  # the chance of attending an ambulatory session on an ordinary week
    events: list[Event] = field(default_factory=list)
    meds: list[tuple[datetime, str]] = field(default_factory=list)
    admitted: datetime | None = None  # the start of the current episode
    changed_medication: bool = False  # in the current episode
    died: datetime | None = None
    sessions: int = 0
    specimens: int = 0

    def add(self, at: datetime, command: str, **fields: Any) -> None:  # noqa: ANN401
        self.events.append((at, {"command": command, "client": self.ref, **fields}))

    def medication_at(self, at: datetime) -> str:
        """The medication in force at `at`: as an episode's entry recorded it, or as changed since."""
        return next((medication for since, medication in reversed(self.meds) if since <= at), self.medication)


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
    deal = _Deal(Random(rng.getrandbits(64)))
    timeline: list[Event] = []
    for number in range(1, clients + 1):
        timeline.extend(_client_timeline(f"C-{number:05d}", Random(rng.getrandbits(64)), deal, key, start, end))
    timeline.sort(key=itemgetter(0))  # stable: ties keep each client's own order
    return [command for _, command in timeline]


def cohort_lines(clients: int, seed: int, *, start: datetime, end: datetime) -> Iterator[str]:
    """One compact JSON line per command, in order (`continuum demo`, `--write FILE`); each command is let go once
    written, so the lines and the commands are not all held at once (BENCHMARKS.md: the demo at 10^5 clients)."""
    commands = generate_cohort(clients, seed, start=start, end=end)
    commands.reverse()
    while commands:
        yield json.dumps(commands.pop(), separators=(",", ":"))


def _client_timeline(ref: str, rng: Random, deal: _Deal, key: str, start: datetime, end: datetime) -> list[Event]:
    medication = _pick(rng, MEDICATION)
    opioid = medication in ("buprenorphine", "methadone") or (medication == "naltrexone" and rng.random() < 0.5)
    substance = rng.choice(("fentanyl", "heroin")) if opioid else _pick(
        rng, {"alcohol": 45, "methamphetamine": 20, "cocaine": 15, "cannabis": 10, "fentanyl": 10})
    track = "day" if rng.random() < 0.6 else "evening"
    c = _Client(ref, rng, deal, end, rng.choice(SITES), track, medication, substance,
                opioid=opioid or substance == "fentanyl", family=rng.random() < 0.5, attendance=rng.betavariate(16, 3))
    level, since = _intake(c, _first_contact(c, start), ENTRY, first=True)
    while rng.random() < NO_SHOW:  # the client does not come; half of them are referred again weeks later
        if rng.random() < 0.5:
            return _numbered(c, key)
        level, since = _intake(c, since + timedelta(days=rng.randint(14, 90)), ENTRY, first=False)
    for _ in range(MAX_EPISODES):
        ended = _episode(c, level, since)
        if ended is None or c.died is not None:
            break
        left, reason = ended
        back = _comeback(c, left, reason)
        if reason == "completed":
            _alumni(c, left, back)
        if back is None or back > end:
            break
        level, since = _intake(c, back, RETURN_ENTRY, first=False)
    return _numbered(c, key)


def _numbered(c: _Client, key: str) -> list[Event]:
    """The client's commands up to the end of the window, in time order, with ids numbered as journey versions."""
    events = [(at, cmd) for at, cmd in sorted(c.events, key=itemgetter(0)) if at <= c.end
              and not (c.died and cmd["command"] == "result_drug_test" and at >= c.died)]
    _maybe_correct(c, events)
    return [(at, {"id": f"demo-{key}-{c.ref}-{n}", **cmd, "occurred_at": at.isoformat().replace("+00:00", "Z")})
            for n, (at, cmd) in enumerate(sorted(events, key=itemgetter(0)), start=1)]


def _first_contact(c: _Client, start: datetime) -> datetime:
    days = max(1, (c.end - start).days)
    return min(c.end, max(start, _midnight(start) + timedelta(days=c.rng.randrange(days), hours=c.rng.randint(8, 16))))


def _intake(c: _Client, at: datetime, entry: Mapping[str, float], *, first: bool) -> tuple[str, datetime]:
    """Register (the first time), refer and assess; returns the level of care entered and when."""
    rng = c.rng
    if first:
        age = rng.randint(13, 17) if rng.random() < 0.05 else rng.randint(18, 30) if rng.random() < 0.42 else rng.randint(31, 70)
        c.add(at, "register", site=c.site, birth_year=at.year - age,
              sex=_pick(rng, {"female": 40, "male": 58, "other": 1, "unknown": 1}))
    group = _pick(rng, entry)
    level = _pick(rng, WM_LEVELS) if group == "WM" else _pick(rng, RES_LEVELS) if group == "RES" else group
    c.add(at + timedelta(minutes=rng.randint(5, 60)), "refer", source=_pick(rng, SOURCES if first else RETURN_SOURCES),
          **({"referred_level": level} if rng.random() < 0.5 else {}))
    at += timedelta(days=rng.randint(0, 2), hours=rng.randint(1, 4))
    c.add(at, "assess", ratings=_ratings(rng, group), recommended_level=level, clinician=f"clinician-{rng.randint(1, 12):02d}")
    wait = timedelta(hours=rng.randint(1, 6)) if group == "WM" else _midnight(at) - at + timedelta(
        days=rng.randint(1, 7), hours=rng.randint(13, 15), minutes=rng.randint(0, 59))
    return level, at + wait


def _ratings(rng: Random, group: str) -> list[int]:
    base = {"WM": 3, "RES": 3, "2.5": 2, "2.1": 2, "1": 1}[group]
    ratings = [min(4, max(0, base + rng.randint(-1, 1))) for _ in range(6)]
    ratings[0] = rng.randint(3, 4) if group == "WM" else min(ratings[0], 1)
    return ratings


def _group(level: str) -> str:
    return "WM" if level.endswith("-WM") else "RES" if level[0] in "34" else level


def _episode(c: _Client, level: str, since: datetime) -> tuple[datetime, str] | None:
    """One treatment episode, stay after stay from its first level: (when, why) it was discharged, or None
    when the window ends first."""
    c.admitted, c.changed_medication = since, False
    for number in range(MAX_STAYS):
        if since > c.end:
            return None
        group = _group(level)
        reason, days = _ending(c, group, since)
        move = None if number == MAX_STAYS - 1 else _move(c.rng, level, group, reason)
        ended = _stay(c, level, since, days, reason, move, first=number == 0)
        if move is None:
            return ended, reason
        level, since = move[1], ended
    return None  # not reached: the last stay ends in a discharge


def _ending(c: _Client, group: str, since: datetime) -> tuple[str, int]:
    """How a stay at `group` begun at `since` ends: its reason and its length in days.

    Each reason of TEDS's mix is weighted by 1 / P(a stay with it ends inside the window), and whether this stay
    ends inside it is dealt with the reason: (reason, ends) cells, the ending ones first, weigh share x P and
    share x (1 - P) / P. The length is then drawn from the reason's spread on the side of the window's end dealt."""
    left = (c.end - _midnight(since)).total_seconds() // 86400 + 0.5  # a stay of fewer whole days ends in the window
    spans, reasons = LOS[group], REASONS[group]
    chance = {reason: _cdf(spans.get(reason, spans["other"]), left) for reason in reasons}
    cells = {(reason, True): share * chance[reason] / max(CUT_FLOOR, chance[reason]) for reason, share in reasons.items()}
    cells |= {(reason, False): share * (1 - chance[reason]) / max(CUT_FLOOR, chance[reason]) for reason, share in reasons.items()}
    reason, ends = c.deal.pick((group, int(min(left, 400) // 30)), cells)
    within = chance[reason]
    spot = within * c.rng.random() if ends else within + (1 - within) * c.rng.random()
    return reason, max(1, round(_quantile(spans.get(reason, spans["other"]), spot)))


def _cdf(span: tuple[float, float, float], x: float) -> float:
    """P(a triangular (low, high, mode) draw < x)."""
    low, high, mode = span
    if x <= low:
        return 0.0
    if x >= high:
        return 1.0
    if x <= mode:
        return (x - low) ** 2 / ((high - low) * (mode - low))
    return 1 - (high - x) ** 2 / ((high - low) * (high - mode))


def _quantile(span: tuple[float, float, float], spot: float) -> float:
    """The triangular (low, high, mode) value below which a share `spot` of draws fall."""
    low, high, mode = span
    if spot < (mode - low) / (high - low):
        return low + sqrt(spot * (high - low) * (mode - low))
    return high - sqrt((1 - spot) * (high - low) * (high - mode))


def _move(rng: Random, level: str, group: str, reason: str) -> tuple[str, str] | None:
    """How a stay ending with `reason` is realised: a step (command, level) or None, a discharge with the reason."""
    if reason == "completed" and group in STEP_DOWN and rng.random() < STEP_DOWN[group][0]:
        return "step_down", _pick(rng, STEP_DOWN[group][1])
    if reason == "transferred" and level in STEP_UP and rng.random() < STEP_UP[level][0]:
        return "step_up", _pick(rng, STEP_UP[level][1])
    return None


def _stay(
    c: _Client, level: str, since: datetime, days: int, reason: str, move: tuple[str, str] | None, *, first: bool,
) -> datetime:
    """One level of care, from `since` for `days`: the entry (if it opens the episode), a plan, medication, sessions
    and tests, then the step or discharge that ends it; returns when it ended."""
    rng, group = c.rng, _group(level)
    hours = rng.randint(9, 12) if group == "WM" else rng.randint(11, 16)
    until = _midnight(since) + timedelta(days=days, hours=hours, minutes=rng.randint(0, 59))
    if first:
        _open(c, level, since)
    _plan(c, since)
    _change_medication(c, since, days)
    trouble = _trouble(c, level, reason, move, until)
    if group != "WM":
        _sessions(c, level, since, until, trouble, _schedules(c, level, since, days, until, reason))
    _tests(c, level, since, until)
    if trouble and trouble[0] == "positives":
        for before in (10, 4):
            if until - before * DAY > since:
                _collect(c, until - before * DAY, is_random=False, positive=True)
    return _leave(c, level, until, reason, move, trouble)


def _trouble(c: _Client, level: str, reason: str, move: tuple[str, str] | None, until: datetime) -> tuple[str, datetime] | None:
    """What goes wrong before an ambulatory or residential stay ends badly, and from when: absences before a client
    leaves against advice; absences or positive tests before a termination or a step up."""
    if level.endswith("-WM"):
        return None
    if reason == "left_against_advice":
        return "dropout", until - 21 * DAY
    if reason == "terminated_by_facility" or (move is not None and move[0] == "step_up"):
        return "absences" if level in AMBULATORY and c.rng.random() < 0.5 else "positives", until - 14 * DAY
    return None


def _leave(
    c: _Client, level: str, until: datetime, reason: str, move: tuple[str, str] | None, trouble: tuple[str, datetime] | None,
) -> datetime:
    """The end of a stay: a discharge with its reason, or a step; withdrawal management is completed (or not) first
    and left an hour or three later. Returns when the stay ended."""
    ended, detox = until, level.endswith("-WM")
    if detox:
        if move is None or move[0] == "step_down":
            c.add(until, "complete_detox", completed=reason == "completed")
        ended = until + timedelta(hours=c.rng.randint(1, 3))
    if move is None:
        _discharge(c, ended, reason)
        return ended
    command, target = move
    text = "withdrawal management completed" if detox else "treatment goals met at this level"
    if command == "step_up":
        text = {"absences": "3 unexcused absences in 14 days", "positives": "2 positive tests in 14 days"}.get(
            trouble[0] if trouble else "", "withdrawal more severe than assessed" if detox else "needs more structure")
    c.add(ended, command, to_level=target, reason=text, **_placement(c, target))
    return ended


def _open(c: _Client, level: str, since: datetime) -> None:
    """The entry that opens an episode, with the client's medication for addiction treatment."""
    c.meds.append((since, c.medication))
    if level.endswith("-WM"):
        c.add(since, "start_detox", level=level, site=c.site, substances=[c.substance], medication=c.medication)
        return
    expected = {"1": 112, "2.1": 84, "2.5": 21}.get(level, 28)
    c.add(since, "admit", level=level, site=c.site, **_placement(c, level), medication=c.medication,
          expected_end=(since + timedelta(days=expected)).date().isoformat())


def _change_medication(c: _Client, since: datetime, days: int) -> None:
    """At most once an episode, a few days into a stay: an induction (opioids: buprenorphine or naltrexone;
    alcohol: naltrexone), a switch between buprenorphine and methadone, or a stop."""
    rng, now = c.rng, c.medication
    if c.changed_medication or days < 3:
        return
    if now == "none":
        chance, choices = (0.35, {"buprenorphine": 80, "naltrexone": 20}) if c.opioid else (
            0.12 if c.substance == "alcohol" else 0.0, {"naltrexone": 100})
    elif now in ("buprenorphine", "methadone"):
        chance, choices = 0.1, {"methadone" if now == "buprenorphine" else "buprenorphine": 60, "none": 40}
    else:
        chance, choices = 0.05, {"none": 100}
    if rng.random() >= chance:
        return
    medication = _pick(rng, choices)
    if medication == "none":
        why = "client declined" if now == "naltrexone" else "tapered off"
    elif now == "none":
        why = "induction for opioid use disorder" if c.opioid else "started for alcohol use disorder"
    else:
        why = "switched: inadequate response" if medication == "methadone" else "switched: client preference"
    at = _midnight(since) + timedelta(days=rng.randint(1, min(14, days - 1)), hours=rng.randint(10, 16),
                                      minutes=rng.randint(1, 59))
    c.add(at, "change_medication", medication=medication, reason=why)
    c.meds.append((at, medication))
    c.medication, c.changed_medication = medication, True


def _placement(c: _Client, level: str) -> dict[str, Any]:
    if level in AMBULATORY:
        return {"track": "day" if level == "2.5" else c.track, "planned_hours_per_week": HOURS[level]}
    return {"planned_hours_per_week": HOURS.get(level, 0.0)}  # 24-hour levels: the domain picks the residential track


def _plan(c: _Client, since: datetime) -> None:
    at = since + timedelta(hours=c.rng.randint(1, 3))
    goals = c.rng.sample(GOALS, c.rng.randint(2, 4))
    c.add(at, "plan", goals=goals, review_on=(at + 30 * DAY).date().isoformat())


Slot = tuple[str, int, int]  # kind, minutes, UTC hour
Week = tuple[tuple[Slot, ...], ...]  # the slots of each weekday, Monday first


def _schedules(c: _Client, level: str, since: datetime, days: int, until: datetime, reason: str) -> list[tuple[datetime, Week]]:
    """The weekly schedules of a stay, each from when it applies: the entry's; after a change of track (about
    6% of longer ambulatory stays); and an IOP's taper to two groups a week in the last two or three weeks
    before a completion (`change_track` to 6 planned hours)."""
    rng = c.rng
    schedules = [(since, _week(c, level, c.track))]
    if level in ("1", "2.1") and days >= 36 and rng.random() < 0.06:
        at = _midnight(since) + timedelta(days=rng.randint(14, days - 22), hours=8, minutes=rng.randint(1, 59))
        c.track = "evening" if c.track == "day" else "day"
        c.add(at, "change_track", track=c.track, reason="day job started" if c.track == "evening" else "schedule changed")
        schedules.append((at, _week(c, level, c.track)))
    if level == "2.1" and reason == "completed" and days >= 49:
        at = _midnight(until) - timedelta(days=rng.randint(14, 21)) + timedelta(hours=8, minutes=rng.randint(1, 59))
        c.add(at, "change_track", planned_hours_per_week=TAPER_HOURS, reason="tapering before completion")
        schedules.append((at, _week(c, level, c.track, taper=True)))
    return schedules


def _week(c: _Client, level: str, track: str, *, taper: bool = False) -> Week:
    """The sessions of a week at `level`; half the clients add a family session."""
    evening = track == "evening"
    slots: list[tuple[int, Slot]]
    if level == "1":
        days = (1, 3) if c.rng.random() < 0.6 else (1,)
        slots = [(d, ("individual" if c.rng.random() < 0.6 else "group", c.rng.choice((60, 75, 90)), 17 if evening else 10))
                 for d in days]
    else:
        family = [(1, ("family", 60, 16 if evening else 13))] if c.family else []
        if level == "2.1":  # Mon/Wed/Fri 3-hour groups on the client's track (Mon/Wed when tapering), one individual
            groups = [(d, ("group", 180, 18 if evening else 9)) for d in ((0, 2) if taper else (0, 2, 4))]
            slots = [*groups, (3, ("individual", 60, 16 if evening else 13)), *family]
        elif level == "2.5":
            slots = [*((d, ("group", 240, 9)) for d in range(5)), (2, ("individual", 60, 14)), *family]
        else:  # residential: two groups a weekday
            slots = [*((d, ("group", 90, hour)) for d in range(5) for hour in (10, 15)), (2, ("individual", 60, 13)), *family]
    return tuple(tuple(slot for d, slot in slots if d == weekday) for weekday in range(7))


def _sessions(c: _Client, level: str, since: datetime, until: datetime, trouble: tuple[str, datetime] | None,
              schedules: list[tuple[datetime, Week]]) -> None:
    """Each session of the schedule in force, attended or missed. Ambulatory programmes close on holidays;
    in 24-hour care nearly every session is attended. Before a client leaves, absences pile up, mostly unexcused."""
    rng = c.rng
    ambulatory = level in AMBULATORY
    usual = c.attendance if ambulatory else 1 - (1 - c.attendance) / 4
    low = 0.35 if trouble and trouble[0] == "dropout" else 0.25
    day, stop, current = _midnight(since) + DAY, min(until, c.end), 0
    while day < stop:
        while current + 1 < len(schedules) and schedules[current + 1][0] < day + DAY:
            current += 1
        slots = schedules[current][1][day.weekday()]
        if slots and not (ambulatory and day.date() in _holidays(day.year)):
            for kind, minutes, hour in slots:
                at = day + timedelta(hours=hour)
                if at >= until:
                    continue
                bad = trouble is not None and trouble[0] != "positives" and at >= trouble[1]
                c.sessions += 1
                session = {"session_id": f"S{c.sessions:04d}", "minutes": minutes, "kind": kind}
                if rng.random() < (low if bad else usual):
                    therapy = {"group_type": rng.choice(GROUP_TYPES)} if kind == "group" else {}
                    c.add(at, "attend_session", **session, **therapy, modality=rng.choice(MODALITIES),
                          telehealth=kind != "group" and rng.random() < 0.15)
                else:
                    c.add(at, "miss_session", **session, excused=rng.random() < (0.1 if bad else 0.4))
        day += DAY


@cache
def _holidays(year: int) -> frozenset[date]:
    """New Year's Day, Memorial Day, Independence Day, Labor Day, Thanksgiving and Christmas."""
    may_31, sep_1, nov_1 = date(year, 5, 31), date(year, 9, 1), date(year, 11, 1)
    memorial = may_31 - timedelta(days=may_31.weekday())
    labor = sep_1 + timedelta(days=-sep_1.weekday() % 7)
    thanksgiving = nov_1 + timedelta(days=(3 - nov_1.weekday()) % 7 + 21)
    return frozenset({date(year, 1, 1), memorial, date(year, 7, 4), labor, thanksgiving, date(year, 12, 25)})


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
    """A collection and its result 1-5 days later (late results are part of the picture); the medication in
    force when it was collected is an expected positive."""
    rng = c.rng
    c.specimens += 1
    specimen_id = f"{c.ref}-U{c.specimens:03d}"
    c.add(at, "collect_drug_test", specimen_id=specimen_id, specimen="urine" if rng.random() < 0.9 else "oral_fluid",
          observed=rng.random() < 0.3, random=is_random)
    early = c.admitted is not None and at - c.admitted < 30 * DAY
    roll, rate = rng.random(), 0.25 if early else 0.12
    result = "positive" if positive or roll < rate else "dilute" if roll < rate + 0.03 else (
        "refused" if roll < rate + 0.05 else "negative")
    medication = c.medication_at(at)
    mat = [medication] if medication in ("buprenorphine", "methadone") and result in ("positive", "negative") else []
    substances = {ANALYTE[c.substance]: result} if result in ("positive", "negative") else {}
    lag = timedelta(days=rng.choices((1, 2, 3, 4, 5), weights=(45, 25, 15, 10, 5))[0], hours=rng.randint(0, 6))
    c.add(at + lag, "result_drug_test", specimen_id=specimen_id, result=result,
          substances=substances | dict.fromkeys(mat, "positive"), expected_medications=mat)


def _discharge(c: _Client, at: datetime, reason: str) -> None:
    onward = {"transferred": "county treatment program", "completed": "mutual-help group"}.get(reason)
    c.add(at, "discharge", reason=reason, **({"referral_onward": onward} if onward else {}))
    if reason == "died":
        c.died = at


def _comeback(c: _Client, left: datetime, reason: str) -> datetime | None:
    """When a discharged client is referred again (a readmission follows), or None."""
    rng = c.rng
    if rng.random() >= READMISSION.get(reason, 0.0):
        return None
    days = rng.randint(2, 25) if rng.random() < SOON else rng.randint(31, 240)
    return _midnight(left) + timedelta(days=days, hours=rng.randint(8, 16), minutes=rng.randint(0, 59))


def _alumni(c: _Client, left: datetime, back: datetime | None) -> None:
    """Four in ten clients who complete join the alumni programme and come to its activities until they return."""
    rng = c.rng
    if rng.random() >= 0.4:
        return
    last = c.end if back is None else min(c.end, back - DAY)
    at = left + timedelta(days=rng.randint(1, 14))
    if at > last:
        return
    c.add(at, "enrol_alumni", program="alumni")
    while (at := at + timedelta(days=rng.randint(20, 40))) <= last:
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
