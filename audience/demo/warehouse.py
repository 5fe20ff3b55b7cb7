"""Synthetic music-label warehouse for `audience demo`, tests and benchmarks.

Everything is generated inside DuckDB with set-based SQL over ``range(n)``. Every random draw
is a pure function of ``(seed, fan_id, row index, draw number)`` computed with DuckDB's
``hash``, so the data (and every row count) depends only on the seed, the sizes and ``as_of``
-- never on thread scheduling, and there is no Python loop over rows.

The data is shaped so the example audiences are non-trivial:

* *ravers*: ~4% of London fans stream dubstep >= 5 times and sample clips >= 3 times in the
  30 days before ``as_of`` and buy only ringtones in the last 90 days; another ~3% of London
  fans look the same but also bought an album last month (a near miss for "only ringtones");
* *samplers*: ~10% of fans sampled an artist's clip and bought from that artist within
  7 days (and ~3% bought 8-20 days later, a near miss for a ``within 7 days`` sequence);
* *lapsed high spenders*: ~3% of fans bought a lot 200-400 days ago and nothing in the
  last 180 days;
* ~1% of the generic events lie after ``as_of`` (future events that must never count);
* consent: ~70% of fans have an ``ads_personalization`` grant row; some were denied later,
  some expired before ``as_of``, ~1% have a grant and a deny with the same timestamp (deny
  wins); older history rows precede each fan's decisive rows;
* ages: ~8% of fans are under 16 at ``as_of`` and another ~5% are 16 or 17 (~13% under 18);
  ~5% have no birth date. Every event belongs to an existing fan (referential integrity).

Measured on the 2-core build machine (DuckDB 2.0, in memory): 1M fans with 18M events and 5M
consent rows (``DemoSizes(fans=1_000_000, consents_per_fan=5)``) take ~16 s of CPU, about 12 s
wall on idle cores (16-30 s while other jobs share them); the default 5,000 fans take ~0.4 s.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
import structlog

log = structlog.get_logger()


@dataclass(frozen=True)
class DemoSizes:
    """How big the warehouse is; the per-fan numbers are averages over all fans."""

    fans: int = 5_000
    streams_per_fan: float = 12
    clips_per_fan: float = 4
    purchases_per_fan: float = 1.5
    checkins_per_fan: float = 0.5
    consents_per_fan: float = 2.5


#: Table name -> ordered (column, DuckDB type): the contract other modules and tests rely on.
TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "fans": (
        ("fan_id", "BIGINT"), ("email", "VARCHAR"), ("phone", "VARCHAR"),
        ("device_id", "VARCHAR"), ("city", "VARCHAR"), ("country", "VARCHAR"),
        ("birth_date", "DATE"), ("signup_at", "TIMESTAMP"), ("favourite_genre", "VARCHAR"),
        ("lifetime_value", "DOUBLE"), ("religion", "VARCHAR"),
    ),
    "streams": (
        ("fan_id", "BIGINT"), ("played_at", "TIMESTAMP"), ("genre", "VARCHAR"),
        ("artist", "VARCHAR"), ("track", "VARCHAR"), ("device", "VARCHAR"),
        ("seconds", "INTEGER"),
    ),
    "clip_samples": (
        ("fan_id", "BIGINT"), ("sampled_at", "TIMESTAMP"), ("artist", "VARCHAR"),
        ("genre", "VARCHAR"), ("seconds", "INTEGER"),
    ),
    "purchases": (
        ("fan_id", "BIGINT"), ("purchased_at", "TIMESTAMP"), ("category", "VARCHAR"),
        ("artist", "VARCHAR"), ("amount", "DOUBLE"),
    ),
    "checkins": (
        ("fan_id", "BIGINT"), ("checked_in_at", "TIMESTAMP"), ("venue", "VARCHAR"),
        ("city", "VARCHAR"), ("artist", "VARCHAR"),
    ),
    "mood_scores": (
        ("fan_id", "BIGINT"), ("scored_at", "TIMESTAMP"), ("mood", "VARCHAR"),
        ("score", "DOUBLE"),
    ),
    "consents": (
        ("profile_key", "BIGINT"), ("purpose", "VARCHAR"), ("status", "VARCHAR"),
        ("updated_at", "TIMESTAMP"), ("expires_at", "TIMESTAMP"), ("source", "VARCHAR"),
    ),
    "suppressions": (("profile_key", "BIGINT"),),
}

# ---------------------------------------------------------------------------------------------
# Vocabulary (weights are relative)
# ---------------------------------------------------------------------------------------------

_COUNTRIES: tuple[tuple[str | None, float], ...] = (
    ("GB", 30), ("US", 20), ("DE", 10), ("FR", 8), ("IE", 5), ("NL", 5), ("ES", 5),
    ("SE", 3), ("NO", 2), ("BR", 4), ("JP", 3), ("CA", 3), (None, 1), ("ZZ", 1),
)
_CITIES: dict[str, tuple[tuple[str, float], ...]] = {
    "GB": (("London", 50), ("Manchester", 20), ("Bristol", 15), ("Glasgow", 15)),
    "US": (("New York", 35), ("Los Angeles", 30), ("Austin", 15), ("Chicago", 20)),
    "DE": (("Berlin", 50), ("Munich", 30), ("Hamburg", 20)),
    "FR": (("Paris", 60), ("Lyon", 20), ("Marseille", 20)),
    "IE": (("Dublin", 70), ("Cork", 30)),
    "NL": (("Amsterdam", 65), ("Rotterdam", 35)),
    "ES": (("Madrid", 50), ("Barcelona", 50)),
    "SE": (("Stockholm", 70), ("Gothenburg", 30)),
    "NO": (("Oslo", 70), ("Bergen", 30)),
    "BR": (("São Paulo", 60), ("Rio de Janeiro", 40)),
    "JP": (("Tokyo", 70), ("Osaka", 30)),
    "CA": (("Toronto", 50), ("Montreal", 25), ("Vancouver", 25)),
}
_VENUES: dict[str, tuple[str, ...]] = {
    "London": ("Fabric", "O2 Academy Brixton", "XOYO", "Printworks", "Corsica Studios"),
    "Manchester": ("The Warehouse Project", "Albert Hall", "Band on the Wall"),
    "Bristol": ("Motion", "Thekla"),
    "Glasgow": ("Sub Club", "Barrowland Ballroom"),
    "New York": ("Brooklyn Steel", "Terminal 5", "Elsewhere"),
    "Los Angeles": ("The Wiltern", "Exchange LA"),
    "Berlin": ("Tresor", "Columbiahalle", "SO36"),
    "Paris": ("La Cigale", "Rex Club"),
    "Dublin": ("Button Factory", "Vicar Street"),
    "Amsterdam": ("Paradiso", "Melkweg"),
    "Tokyo": ("Womb", "Zepp Shinjuku"),
    "Toronto": ("History", "Rebel"),
}
_GENRES = ("dubstep", "drum_and_bass", "grime", "house", "techno", "pop", "indie", "hip_hop",
           "jazz", "classical")
_LONDON_GENRES = tuple(zip(_GENRES, (25, 10, 20, 10, 5, 10, 8, 7, 3, 2), strict=True))
_OTHER_GENRES = tuple(zip(_GENRES, (5, 5, 3, 10, 10, 25, 12, 15, 8, 7), strict=True))
_ARTISTS: dict[str, tuple[str, ...]] = {
    "dubstep": ("Wobble Unit", "Sub Pressure", "Croydon Haze", "Bassline Ghost", "Halfstep"),
    "drum_and_bass": ("Amen Circuit", "Liquid Lines", "Jungle Tekk", "Roller Coast", "Reese"),
    "grime": ("Bow E3", "Road Prophet", "Sixteen Bars", "Eskimo Crew", "Pirate Signal"),
    "house": ("Deep Chord Society", "Warehouse Saints", "Jackin Jo", "Four Four", "Disco Lung"),
    "techno": ("Acid Loop", "Detroit Ghost", "Hard Wax Unit", "Modular Mile", "Strobe Theory"),
    "pop": ("Neon Hearts", "Bubblegum Riot", "Shiny Days", "Polly Starr", "Glitter Fox"),
    "indie": ("Velvet Curtains", "The Loose Ends", "Garage Saints", "Cardigan Club", "Fuzzbox"),
    "hip_hop": ("MC Parallax", "Boom Bap Kings", "Lil Vector", "Southside Syntax", "Dre Lux"),
    "jazz": ("Midnight Trio", "Smoky Keys", "Ella Vance", "Brass Lantern", "Blue Hour"),
    "classical": ("Aurora Strings", "Hanover Philharmonic", "Clara Voss", "Baroque Assembly",
                  "Nocturne Ensemble"),
}
_ARTISTS_PER_GENRE = 5
_TRACK_ADJECTIVES = ("Midnight", "Concrete", "Electric", "Golden", "Broken", "Silent", "Neon",
                     "Heavy", "Lost", "Velvet", "Northern", "Burning", "Hollow")
_TRACK_NOUNS = ("Pressure", "Rain", "Signal", "Skyline", "Dreams", "Motion", "Echo", "Tower",
                "Riddim", "Heart", "Frequency")
_DEVICES = (("mobile", 65), ("desktop", 25), ("smart_speaker", 10))
_CATEGORIES = (("ringtone", 25), ("single", 25), ("album", 20), ("vinyl", 10), ("ticket", 10),
               ("merch", 10))
_LAPSED_CATEGORIES = (("vinyl", 35), ("ticket", 35), ("merch", 20), ("album", 10))
_SAMPLER_CATEGORIES = (("single", 40), ("album", 30), ("ringtone", 15), ("vinyl", 15))
# Amounts are floor(uniform(lo, hi)) + 0.99.
_PRICE_RANGES = {"ringtone": (0.0, 3.0), "single": (0.0, 1.4), "album": (7.0, 13.0),
                 "vinyl": (19.0, 35.0), "ticket": (25.0, 120.0), "merch": (15.0, 45.0)}
_MOODS = ("happy", "sad", "energetic", "calm", "anxious")
_RELIGIONS = ((None, 94), ("christian", 2), ("muslim", 1), ("jewish", 0.5), ("hindu", 0.5),
              ("buddhist", 0.5), ("none", 1.5))
_FIRST_NAMES = ("olivia", "amelia", "isla", "ava", "mia", "sophia", "grace", "lily", "emma",
                "chloe", "noah", "oliver", "george", "leo", "harry", "jack", "jacob", "liam",
                "lucas", "mohammed", "ethan", "james", "aisha", "priya", "mateo", "yuki",
                "lena", "lukas", "camille", "sven")
_LAST_NAMES = ("smith", "jones", "taylor", "brown", "williams", "wilson", "johnson", "davies",
               "patel", "wright", "walker", "khan", "garcia", "muller", "schmidt", "martin",
               "bernard", "murphy", "kelly", "devries", "lopez", "andersson", "hansen",
               "silva", "tanaka", "roy", "okafor", "nguyen", "evans", "obrien")
_DEFAULT_DOMAINS = ("outlook.com", "yahoo.com", "icloud.com", "hotmail.com")
_COUNTRY_DOMAINS: dict[str, tuple[str, ...]] = {
    "GB": ("hotmail.co.uk", "btinternet.com", "yahoo.co.uk", "outlook.com", "icloud.com"),
    "US": ("yahoo.com", "outlook.com", "icloud.com", "aol.com", "hotmail.com"),
    "DE": ("gmx.de", "web.de", "t-online.de", "outlook.de"),
    "FR": ("orange.fr", "free.fr", "laposte.net", "outlook.fr"),
    "IE": ("eircom.net", "outlook.com", "yahoo.ie"),
    "NL": ("ziggo.nl", "kpnmail.nl", "outlook.com"),
    "BR": ("uol.com.br", "bol.com.br", "outlook.com"),
    "JP": ("yahoo.co.jp", "docomo.ne.jp", "icloud.com"),
}
_PLUS_TAGS = ("music", "promo", "ads", "gigs", "2023", "newsletter")
_INVALID_EMAILS = ("no-at-sign", "a@b", "@gmail.com", "unknown", "n/a")
_INVALID_PHONES = ("12345", "n/a", "+44 123", "0000000000", "call me", "+1 555", "07")
# (E.164 template, national template): '#' is any digit, '%' a digit from 2 to 9.
_PHONE_TEMPLATES: dict[str, tuple[tuple[str, str], ...]] = {
    "GB": (("+44 79%# ######", "079%# ######"), ("+44 75%# ######", "075%# ######"),
           ("+44 20 7946 ####", "020 7946 ####")),
    "US": (("+1 201 %## ####", "(201) %##-####"), ("+1 212 %## ####", "(212) %##-####"),
           ("+1 512 %## ####", "(512) %##-####"), ("+1 312 %## ####", "(312) %##-####"),
           ("+1 213 %## ####", "(213) %##-####")),
    "DE": (("+49 30 %######", "030 %######"), ("+49 151 ########", "0151 ########"),
           ("+49 89 %######", "089 %######")),
    "FR": (("+33 6 1# ## ## ##", "06 1# ## ## ##"), ("+33 6 7# ## ## ##", "06 7# ## ## ##"),
           ("+33 1 %# ## ## ##", "01 %# ## ## ##")),
    "IE": (("+353 85 ### ####", "085 ### ####"), ("+353 87 ### ####", "087 ### ####")),
    "NL": (("+31 6 1#######", "06 1#######"), ("+31 6 2#######", "06 2#######")),
    "ES": (("+34 6## ## ## ##", "6## ## ## ##"),),
    "SE": (("+46 70 ### ## ##", "070-### ## ##"), ("+46 73 ### ## ##", "073-### ## ##")),
    "NO": (("+47 41# ## ###", "41# ## ###"), ("+47 9## ## ###", "9## ## ###")),
    "BR": (("+55 11 9####-####", "(11) 9####-####"), ("+55 21 9####-####", "(21) 9####-####")),
    "JP": (("+81 90-%###-####", "090-%###-####"), ("+81 80-####-####", "080-####-####")),
    "CA": (("+1 416 %## ####", "(416) %##-####"), ("+1 604 %## ####", "(604) %##-####")),
}
_GRANT_SOURCES = (("first_party", 55), ("tcf", 35), ("gpp", 10))
_DENY_SOURCES = (("first_party", 40), ("tcf", 20), ("gpc", 15), ("usp", 15), ("gpp", 10))

_TRAITS = "_demo_fan_traits"
_MOODS_PER_FAN = 0.2
_DAY_US = 86_400_000_000
_MINUTE = "(1.0 / 1440)"

# Personas (exactly one per fan).
_REGULAR, _RAVER, _NEAR_MISS, _LAPSED, _SAMPLER, _SLOW_SAMPLER = range(6)
# Shares: ravers and near misses of London fans; the others of all fans (a separate slice of
# the same draw, so a London fan is at most one of them).
_RAVER_SHARE, _NEAR_MISS_SHARE = 0.04, 0.03
_PERSONA_OFFSET, _LAPSED_SHARE, _SAMPLER_SHARE, _SLOW_SHARE = 0.10, 0.03, 0.10, 0.03
_RAVERS = f"persona IN ({_RAVER}, {_NEAR_MISS})"
_SAMPLERS = f"persona IN ({_SAMPLER}, {_SLOW_SAMPLER})"

# ads_personalization story: cumulative shares of fans.
_AP_VALID, _AP_LATER_DENIED, _AP_EXPIRED, _AP_TIE, _AP_DENIED_ONLY = (
    0.56, 0.63, 0.69, 0.70, 0.82)
_SALE_SHARE_US_CA = 0.35  # US/CA fans with a sale_or_share decision


# ---------------------------------------------------------------------------------------------
# SQL building blocks
# ---------------------------------------------------------------------------------------------

def _q(text: str) -> str:
    """SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _lit(value: str | None) -> str:
    return "NULL" if value is None else _q(value)


def _list(values: Sequence[str]) -> str:
    return "[" + ", ".join(_q(v) for v in values) + "]"


def _mix(h: str, draw: int) -> str:
    """64 fresh pseudo-random bits from the row hash ``h`` for draw number ``draw``.

    ``hash(h, draw)`` is not used on purpose: DuckDB combines multi-argument hashes in a way
    that leaves draws of the same row visibly correlated (r ~ 0.5); hashing ``h`` xor-ed with a
    per-draw odd constant runs the full avalanche and gives independent draws.
    """
    constant = (draw * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) % 2**64
    return f"hash(xor({h}, {constant}::UBIGINT))"


def _row_hash(*parts: str) -> str:
    """Row seed from the seed, keys and a table tag, re-hashed so nearby keys are unrelated."""
    return f"hash(hash({', '.join(parts)}))"


def _u(h: str, draw: int) -> str:
    """Uniform double in [0, 1) from 53 bits of a draw (a pure function of the row)."""
    return f"(({_mix(h, draw)} >> 11) / 9007199254740992.0)"


def _weighted(u: str, choices: Sequence[tuple[str | None, float]]) -> str:
    """CASE expression picking a value with the given relative weights."""
    total = sum(w for _, w in choices)
    parts, acc = [], 0.0
    for value, weight in choices[:-1]:
        acc += weight / total
        parts.append(f"WHEN {u} < {acc!r} THEN {_lit(value)}")
    return f"(CASE {' '.join(parts)} ELSE {_lit(choices[-1][0])} END)"


def _uniform(u: str, values: Sequence[str]) -> str:
    return _weighted(u, [(v, 1.0) for v in values])


def _count(mean: float, u1: str, u2: str) -> str:
    """Exponentially distributed (heavy-tailed) row count with the given mean."""
    if mean <= 0:
        return "CAST(0 AS BIGINT)"
    return f"CAST(floor({float(mean)!r} * -ln(1 - {u1}) + {u2}) AS BIGINT)"


def _ts(as_of_us: int, days_before: str) -> str:
    """TIMESTAMP ``days_before`` days before as_of (negative: after), whole seconds."""
    micros = f"({as_of_us} - CAST(({days_before}) * {_DAY_US} AS BIGINT))"
    return f"make_timestamp(CAST(floor({micros} / 1000000) AS BIGINT) * 1000000)"


def _generic_days(u_future: str, u_when: str, window: str = "400") -> str:
    """Generic event time: ~1% in the 30 days after as_of, the rest in the window before it."""
    return (f"(CASE WHEN {u_future} < 0.01 THEN -({_MINUTE} + 30 * {u_when}) "
            f"ELSE {_MINUTE} + ({window} - {_MINUTE}) * {u_when} END)")


def _recent_days(u: str) -> str:
    """Within the 30 days before as_of."""
    return f"({_MINUTE} + 29.9 * {u})"


def _genre(u: str, london: str = "london") -> str:
    """A genre from the fan's region mix (London leans dubstep/grime)."""
    return (f"(CASE WHEN {london} THEN {_weighted(u, _LONDON_GENRES)} "
            f"ELSE {_weighted(u, _OTHER_GENRES)} END)")


def _fan_genre(u_mix: str, u_genre: str, share: float = 0.55) -> str:
    """The fan's favourite genre part of the time, otherwise the regional mix."""
    return f"(CASE WHEN {u_mix} < {share} THEN favourite_genre ELSE {_genre(u_genre)} END)"


def _artist(genre: str, u: str) -> str:
    """One of the genre's five artists, so artist and genre always agree."""
    cases = " ".join(f"WHEN {_q(g)} THEN {_list(names)}" for g, names in _ARTISTS.items())
    index = f"1 + CAST(floor({u} * {_ARTISTS_PER_GENRE}) AS INTEGER)"
    return f"list_extract(CASE {genre} {cases} END, {index})"


def _track(artist: str, u: str) -> str:
    """Title that is a pure function of (artist, track number), so tracks repeat across fans."""
    a = f"CAST(hash({artist}) % 1000 AS BIGINT)"
    t = f"CAST(floor({u} * 12) AS BIGINT)"
    adj, noun = _TRACK_ADJECTIVES, _TRACK_NOUNS
    first = f"list_extract({_list(adj)}, 1 + CAST(({a} + {t} * 7) % {len(adj)} AS INTEGER))"
    second = f"list_extract({_list(noun)}, 1 + CAST(({a} * 3 + {t} * 5) % {len(noun)} AS INTEGER))"
    return f"({first} || ' ' || {second})"


def _fan_rows(base: str, extra: str, seed: int, tag: int) -> str:
    """One row per (fan, k), k < base + extra; rows k >= base are the persona's extra rows.

    ``h`` seeds the row's draws; ``hp`` seeds a sampler's k-th clip/purchase pair and is the
    same in clip_samples and purchases, which is what ties a clip to its purchase.
    """
    return f"""(
        SELECT t.fan_id, t.persona, t.london, t.city, t.favourite_genre, k,
               t.{base} AS n_base, k >= t.{base} AS extra,
               {_row_hash(f'{seed}::BIGINT', 't.fan_id', 'k', f'{tag}::INTEGER')} AS h,
               CASE WHEN k >= t.{base}
                    THEN {_row_hash(f'{seed}::BIGINT', 't.fan_id', f'k - t.{base}', '99::INTEGER')}
                    END AS hp
        FROM {_TRAITS} t, range(t.{base} + t.{extra}) r(k)
    )"""


def _phone_template(template: str, digits: str) -> str:
    """SQL for a phone template ('#' any digit, '%' a digit 2-9) over a string of digits."""
    pieces: list[str] = []
    literal, pos = "", 1
    for ch in template:
        if ch not in "#%":
            literal += ch
            continue
        if literal:
            pieces.append(_q(literal))
            literal = ""
        digit = f"substr({digits}, {pos}, 1)"
        if ch == "%":
            digit = f"CAST(2 + CAST({digit} AS INTEGER) % 8 AS VARCHAR)"
        pieces.append(digit)
        pos += 1
    if literal:
        pieces.append(_q(literal))
    return "(" + " || ".join(pieces) + ")"


# ---------------------------------------------------------------------------------------------
# Fan traits: one row per fan with every draw the other tables depend on
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Extra:
    """Persona rows per fan: ``low + floor(u * span)``, i.e. low .. low + span - 1."""

    low: int
    span: int

    @property
    def mean(self) -> float:
        return self.low + (self.span - 1) / 2

    def sql(self, u: str) -> str:
        return f"CAST({self.low} + floor({u} * {self.span}) AS BIGINT)"


_RAVER_STREAMS, _RAVER_CLIPS = _Extra(5, 8), _Extra(3, 4)
_RAVER_BUYS, _NEAR_MISS_BUYS, _LAPSED_BUYS, _PAIRS = (
    _Extra(1, 3), _Extra(2, 3), _Extra(6, 10), _Extra(1, 3))


def _persona_shares() -> dict[int, float]:
    """Expected share of all fans per persona (to keep the per-fan averages honest)."""
    countries = dict(_COUNTRIES)
    gb_cities = dict(_CITIES["GB"])
    london = (countries["GB"] / sum(countries.values())) * (
        gb_cities["London"] / sum(gb_cities.values()))
    return {_RAVER: london * _RAVER_SHARE, _NEAR_MISS: london * _NEAR_MISS_SHARE,
            _LAPSED: _LAPSED_SHARE, _SAMPLER: _SAMPLER_SHARE, _SLOW_SAMPLER: _SLOW_SHARE}


def _base_means(sizes: DemoSizes) -> dict[str, float]:
    """Per-fan mean of generic rows: the requested average minus the persona rows."""
    sh = _persona_shares()
    ravers, samplers = sh[_RAVER] + sh[_NEAR_MISS], sh[_SAMPLER] + sh[_SLOW_SAMPLER]
    extra_buys = (sh[_RAVER] * _RAVER_BUYS.mean + sh[_NEAR_MISS] * _NEAR_MISS_BUYS.mean
                  + sh[_LAPSED] * _LAPSED_BUYS.mean + samplers * _PAIRS.mean)
    return {
        "streams": max(0.0, sizes.streams_per_fan - ravers * _RAVER_STREAMS.mean),
        "clips": max(0.0, sizes.clips_per_fan - ravers * _RAVER_CLIPS.mean
                     - samplers * _PAIRS.mean),
        "purchases": max(0.0, sizes.purchases_per_fan - extra_buys),
    }


def _persona_sql() -> str:
    p = _u("h", 3)
    near = _RAVER_SHARE + _NEAR_MISS_SHARE
    lapsed_end = _PERSONA_OFFSET + _LAPSED_SHARE
    sampler_end = lapsed_end + _SAMPLER_SHARE
    return (f"CASE WHEN london AND {p} < {_RAVER_SHARE} THEN {_RAVER} "
            f"WHEN london AND {p} < {near} THEN {_NEAR_MISS} "
            f"WHEN {p} >= {_PERSONA_OFFSET} AND {p} < {lapsed_end} THEN {_LAPSED} "
            f"WHEN {p} >= {lapsed_end} AND {p} < {sampler_end} THEN {_SAMPLER} "
            f"WHEN {p} >= {sampler_end} AND {p} < {sampler_end + _SLOW_SHARE} "
            f"THEN {_SLOW_SAMPLER} ELSE {_REGULAR} END")


def _traits_sql(sizes: DemoSizes, seed: int) -> str:
    city_cases = " ".join(
        f"WHEN {_q(c)} THEN {_weighted(_u('h', 2), cities)}" for c, cities in _CITIES.items())
    means = _base_means(sizes)
    pairs = _PAIRS.sql(_u("h", 20))
    return f"""
    CREATE TEMP TABLE {_TRAITS} AS
    WITH base AS (
        SELECT i + 1 AS fan_id, {_row_hash(f'{seed}::BIGINT', 'i + 1', '0::INTEGER')} AS h
        FROM range({sizes.fans}) r(i)
    ), geo AS (
        SELECT fan_id, h, {_weighted(_u('h', 1), _COUNTRIES)} AS country FROM base
    ), placed AS (
        SELECT *, CASE country {city_cases} END AS city FROM geo
    ), personas AS (
        SELECT *, coalesce(city = 'London', false) AS london FROM placed
    )
    SELECT fan_id, h, country, city, london, {_persona_sql()} AS persona,
        CASE WHEN {_RAVERS} THEN 'dubstep' ELSE {_genre(_u('h', 4))} END AS favourite_genre,
        {_count(means['streams'], _u('h', 5), _u('h', 6))} AS n_streams,
        CASE WHEN {_RAVERS} THEN {_RAVER_STREAMS.sql(_u('h', 7))} ELSE 0 END AS x_streams,
        {_count(means['clips'], _u('h', 8), _u('h', 9))} AS n_clips,
        CASE WHEN {_RAVERS} THEN {_RAVER_CLIPS.sql(_u('h', 10))}
             WHEN {_SAMPLERS} THEN {pairs} ELSE 0 END AS x_clips,
        {_count(means['purchases'], _u('h', 11), _u('h', 12))} AS n_purchases,
        CASE WHEN persona = {_RAVER} THEN {_RAVER_BUYS.sql(_u('h', 13))}
             WHEN persona = {_NEAR_MISS} THEN {_NEAR_MISS_BUYS.sql(_u('h', 13))}
             WHEN persona = {_LAPSED} THEN {_LAPSED_BUYS.sql(_u('h', 13))}
             WHEN {_SAMPLERS} THEN {pairs} ELSE 0 END AS x_purchases,
        {_count(sizes.checkins_per_fan, _u('h', 14), _u('h', 15))} AS n_checkins,
        {_count(_MOODS_PER_FAN, _u('h', 16), _u('h', 17))} AS n_moods,
        CAST(0 AS BIGINT) AS x_none
    FROM personas
    """


# ---------------------------------------------------------------------------------------------
# Event tables
# ---------------------------------------------------------------------------------------------

def _pair_days() -> str:
    """Days before as_of of a sampler's k-th sampled clip (shared by clips and purchases)."""
    return f"(10 + 380 * {_u('hp', 1)})"


def _pair_delay_days() -> str:
    """Days from a sampled clip to the purchase from that artist: <7 for samplers, 8-20 else."""
    return (f"(CASE WHEN persona = {_SAMPLER} THEN 1.0 / 24 + (7 - 2.0 / 24) * {_u('hp', 2)} "
            f"ELSE 8 + 12 * {_u('hp', 2)} END)")


def _pair_genre() -> str:
    return _uniform(_u("hp", 3), _GENRES)


def _streams_sql(as_of_us: int, seed: int, schema: str) -> str:
    days = (f"CASE WHEN extra THEN {_recent_days(_u('h', 3))} "
            f"ELSE {_generic_days(_u('h', 4), _u('h', 3))} END")
    seconds = (f"CAST(CASE WHEN {_u('h', 6)} < 0.1 THEN 5 + 25 * {_u('h', 7)} "
               f"ELSE 30 + 330 * {_u('h', 7)} END AS INTEGER)")
    return f"""
    INSERT INTO {schema}.streams
    SELECT fan_id, {_ts(as_of_us, 'days')}, genre, artist, {_track('artist', _u('h', 8))},
           {_weighted(_u('h', 5), _DEVICES)}, {seconds}
    FROM (
        SELECT *, {_artist('genre', _u('h', 9))} AS artist
        FROM (SELECT fan_id, h, {days} AS days,
                     CASE WHEN extra THEN 'dubstep' ELSE {_fan_genre(_u('h', 1), _u('h', 2))}
                     END AS genre
              FROM {_fan_rows('n_streams', 'x_streams', seed, 1)})
    )
    """


def _clips_sql(as_of_us: int, seed: int, schema: str) -> str:
    raver_extra = f"(extra AND {_RAVERS})"
    pair = f"(extra AND {_SAMPLERS})"
    days = (f"CASE WHEN {raver_extra} THEN {_recent_days(_u('h', 3))} "
            f"WHEN {pair} THEN {_pair_days()} "
            f"ELSE {_generic_days(_u('h', 4), _u('h', 3))} END")
    genre = (f"CASE WHEN {raver_extra} THEN 'dubstep' WHEN {pair} THEN {_pair_genre()} "
             f"ELSE {_fan_genre(_u('h', 1), _u('h', 2))} END")
    artist = (f"CASE WHEN {pair} THEN {_artist('genre', _u('hp', 4))} "
              f"ELSE {_artist('genre', _u('h', 5))} END")
    return f"""
    INSERT INTO {schema}.clip_samples
    SELECT fan_id, {_ts(as_of_us, 'days')}, {artist}, genre,
           CAST(10 + 20 * {_u('h', 6)} AS INTEGER)
    FROM (SELECT *, {days} AS days, {genre} AS genre
          FROM {_fan_rows('n_clips', 'x_clips', seed, 2)})
    """


def _purchases_sql(as_of_us: int, seed: int, schema: str) -> str:
    lapsed = f"persona = {_LAPSED}"
    pair = f"(extra AND {_SAMPLERS})"
    days = (f"CASE WHEN extra AND {_RAVERS} THEN {_recent_days(_u('h', 1))} "
            f"WHEN extra AND {lapsed} THEN 200 + 200 * {_u('h', 1)} "
            f"WHEN {pair} THEN {_pair_days()} - {_pair_delay_days()} "
            f"WHEN {lapsed} THEN 180 + 220 * {_u('h', 1)} "
            f"ELSE {_generic_days(_u('h', 2), _u('h', 1))} END")
    # Near misses buy one album last month on top of their ringtones (their first extra row).
    category = (f"CASE WHEN persona = {_NEAR_MISS} AND k = n_base THEN 'album' "
                f"WHEN extra AND {_RAVERS} THEN 'ringtone' "
                f"WHEN extra AND {lapsed} THEN {_weighted(_u('h', 3), _LAPSED_CATEGORIES)} "
                f"WHEN extra THEN {_weighted(_u('h', 3), _SAMPLER_CATEGORIES)} "
                f"WHEN {_RAVERS} AND days < 90 THEN 'ringtone' "
                f"ELSE {_weighted(_u('h', 3), _CATEGORIES)} END")
    genre = (f"CASE WHEN {pair} THEN {_pair_genre()} "
             f"ELSE {_fan_genre(_u('h', 4), _u('h', 5), 0.6)} END")
    artist = (f"CASE WHEN {pair} THEN {_artist('genre', _u('hp', 4))} "
              f"ELSE {_artist('genre', _u('h', 6))} END")
    price_cases = " ".join(f"WHEN {_q(c)} THEN {lo!r} + {hi - lo!r} * {_u('h', 7)}"
                           for c, (lo, hi) in _PRICE_RANGES.items())
    return f"""
    INSERT INTO {schema}.purchases
    SELECT fan_id, {_ts(as_of_us, 'days')}, category, {artist},
           round(floor(CASE category {price_cases} END) + 0.99, 2)
    FROM (
        SELECT *, {category} AS category, {genre} AS genre
        FROM (SELECT *, {days} AS days FROM {_fan_rows('n_purchases', 'x_purchases', seed, 3)})
    )
    """


def _checkins_sql(as_of_us: int, seed: int, schema: str) -> str:
    all_cities = [c for cities in _CITIES.values() for c, _ in cities]
    city = (f"CASE WHEN city IS NOT NULL AND {_u('h', 1)} < 0.85 THEN city "
            f"ELSE {_uniform(_u('h', 2), all_cities)} END")
    venue_cases = " ".join(f"WHEN {_q(c)} THEN {_list(v)}" for c, v in _VENUES.items())
    venue = "list_extract(venues, 1 + CAST(floor({u} * len(venues)) AS INTEGER))"
    return f"""
    INSERT INTO {schema}.checkins
    SELECT fan_id, {_ts(as_of_us, _generic_days(_u('h', 5), _u('h', 6)))},
           {venue.format(u=_u('h', 7))}, c_city,
           {_artist(_fan_genre(_u('h', 3), _u('h', 4), 0.6), _u('h', 8))}
    FROM (
        SELECT *, coalesce(CASE c_city {venue_cases} END, [c_city || ' Arena']) AS venues
        FROM (SELECT *, {city} AS c_city FROM {_fan_rows('n_checkins', 'x_none', seed, 4)})
    )
    """


def _moods_sql(as_of_us: int, seed: int, schema: str) -> str:
    return f"""
    INSERT INTO {schema}.mood_scores
    SELECT fan_id, {_ts(as_of_us, f"{_MINUTE} + 200 * {_u('h', 1)}")},
           {_uniform(_u('h', 2), _MOODS)}, round({_u('h', 3)}, 3)
    FROM {_fan_rows('n_moods', 'x_none', seed, 5)}
    """


# ---------------------------------------------------------------------------------------------
# Fans (built after purchases: lifetime value is the sum of past purchases)
# ---------------------------------------------------------------------------------------------

def _email_parts_sql() -> str:
    """Traits plus first/last name, domain and a clean local part (unique per fan)."""
    domain_cases = " ".join(f"WHEN {_q(c)} THEN {_uniform(_u('h', 33), ds)}"
                            for c, ds in _COUNTRY_DOMAINS.items())
    n, v = "CAST(fan_id AS VARCHAR)", _u("h", 34)
    tag = _uniform(_u("h", 35), _PLUS_TAGS)
    local = (f"CASE WHEN domain = 'gmail.com' AND {v} < 0.3 THEN first || '.' || last || {n} "
             f"|| '+' || {tag} "
             f"WHEN domain = 'gmail.com' AND {v} < 0.6 THEN substr(first, 1, 1) || '.' "
             f"|| substr(first, 2) || '.' || last || '.' || {n} "
             f"WHEN {v} < 0.5 THEN first || '.' || last || {n} "
             f"WHEN {v} < 0.8 THEN first || substr(last, 1, 1) || {n} "
             f"ELSE first || '_' || last || {n} END")
    return f"""
        SELECT *, {local} AS local_part
        FROM (
            SELECT *, {_uniform(_u('h', 30), _FIRST_NAMES)} AS first,
                {_uniform(_u('h', 31), _LAST_NAMES)} AS last,
                CASE WHEN {_u('h', 32)} < 0.25 THEN 'gmail.com'
                     ELSE coalesce(CASE country {domain_cases} END,
                                   {_uniform(_u('h', 33), _DEFAULT_DOMAINS)}) END AS domain
            FROM {_TRAITS}
        )
    """


def _email() -> str:
    """~10% NULL, ~2% invalid, ~12% with upper case, ~3% with surrounding spaces."""
    clean = "clean_email"
    invalid = (f"CASE WHEN {_u('h', 37)} < 0.2 THEN first || '.' || last || '@' "
               f"ELSE {_uniform(_u('h', 45), _INVALID_EMAILS)} END")
    cased = (f"CASE WHEN {_u('h', 38)} < 0.08 THEN upper(substr({clean}, 1, 1)) "
             f"|| substr({clean}, 2) WHEN {_u('h', 38)} < 0.12 THEN upper({clean}) "
             f"ELSE {clean} END")
    spaced = (f"CASE WHEN {_u('h', 39)} < 0.015 THEN ' ' || ({cased}) || ' ' "
              f"WHEN {_u('h', 39)} < 0.03 THEN ({cased}) || '  ' ELSE {cased} END")
    return (f"CASE WHEN {_u('h', 36)} < 0.10 THEN NULL "
            f"WHEN {_u('h', 36)} < 0.12 THEN {invalid} ELSE {spaced} END")


def _phone() -> str:
    """~30% NULL, ~3% invalid; else the fan's country in E.164 (spaced or compact) or national."""
    digits = "phone_digits"
    style = _u("h", 43)
    country_cases = []
    for country, variants in _PHONE_TEMPLATES.items():
        options = []
        for i, (e164, national) in enumerate(variants):
            e = _phone_template(e164, digits)
            options.append(
                f"WHEN {_u('h', 42)} < {(i + 1) / len(variants)!r} THEN "
                f"CASE WHEN {style} < 0.35 THEN {e} "
                f"WHEN {style} < 0.5 THEN replace(replace({e}, ' ', ''), '-', '') "
                f"ELSE {_phone_template(national, digits)} END")
        country_cases.append(f"WHEN {_q(country)} THEN CASE {' '.join(options)} END")
    fallback = _phone_template(_PHONE_TEMPLATES["GB"][0][0], digits)
    return (f"CASE WHEN {_u('h', 40)} < 0.30 THEN NULL "
            f"WHEN {_u('h', 40)} < 0.33 THEN {_uniform(_u('h', 44), _INVALID_PHONES)} "
            f"ELSE coalesce(CASE country {' '.join(country_cases)} END, {fallback}) END")


def _device_id() -> str:
    """~40% NULL; version-4-shaped UUIDs, ~30% of them upper case."""
    x = "device_hex"
    variant = f"list_extract(['8', '9', 'a', 'b'], 1 + CAST(floor({_u('h', 53)} * 4) AS INTEGER))"
    uuid = (f"lower(substr({x}, 1, 8) || '-' || substr({x}, 9, 4) || '-4' || substr({x}, 14, 3)"
            f" || '-' || {variant} || substr({x}, 18, 3) || '-' || substr({x}, 21, 12))")
    return (f"CASE WHEN {_u('h', 50)} < 0.40 THEN NULL "
            f"WHEN {_u('h', 54)} < 0.3 THEN upper({uuid}) ELSE {uuid} END")


def _birth_date(as_of_date: str) -> str:
    """Exact ages: as_of minus the drawn whole years minus 0-364 days is exactly that age."""
    age = (f"CASE WHEN {_u('h', 60)} < 0.08 THEN 10 + floor(6 * {_u('h', 61)}) "
           f"WHEN {_u('h', 60)} < 0.13 THEN 16 + floor(2 * {_u('h', 61)}) "
           f"ELSE 18 + floor(52 * pow({_u('h', 61)}, 1.6)) END")
    return (f"CASE WHEN {_u('h', 62)} < 0.05 THEN NULL ELSE CAST("
            f"{as_of_date} - to_years(CAST({age} AS INTEGER)) "
            f"- to_days(CAST(floor(365 * {_u('h', 63)}) AS INTEGER)) AS DATE) END")


def _fans_sql(as_of_us: int, as_of_date: str, schema: str) -> str:
    return f"""
    INSERT INTO {schema}.fans
    SELECT e.fan_id, {_email()}, {_phone()}, {_device_id()}, e.city, e.country,
           {_birth_date(as_of_date)}, {_ts(as_of_us, f"30 + 1800 * {_u('h', 71)}")},
           e.favourite_genre, coalesce(round(p.ltv, 2), 0.0),
           {_weighted(_u('h', 70), _RELIGIONS)}
    FROM (
        SELECT *, local_part || '@' || domain AS clean_email,
            lpad(CAST({_mix('h', 41)} % 1000000000000 AS VARCHAR), 12, '0') AS phone_digits,
            lpad(to_hex({_mix('h', 51)}), 16, '0') || lpad(to_hex({_mix('h', 52)}), 16, '0')
                AS device_hex
        FROM ({_email_parts_sql()})
    ) e
    LEFT JOIN (
        SELECT fan_id, sum(amount) AS ltv FROM {schema}.purchases
        WHERE purchased_at <= make_timestamp({as_of_us}::BIGINT) GROUP BY fan_id
    ) p USING (fan_id)
    """


# ---------------------------------------------------------------------------------------------
# Consents and suppressions
# ---------------------------------------------------------------------------------------------

def _history_mean(sizes: DemoSizes) -> float:
    """Mean older history rows per fan with an ads_personalization story, so that the total
    number of consent rows per fan averages ``sizes.consents_per_fan`` (when it can)."""
    weights = dict(_COUNTRIES)
    us_ca = (weights["US"] + weights["CA"]) / sum(weights.values())
    grants = _AP_TIE
    denies = (_AP_LATER_DENIED - _AP_VALID) + (_AP_DENIED_ONLY - _AP_EXPIRED)
    decisive = grants + denies + grants + us_ca * _SALE_SHARE_US_CA
    return max(0.0, sizes.consents_per_fan - decisive) / _AP_DENIED_ONLY


def _consent_story_sql() -> str:
    s = _u("h", 80)
    ap = (f"CASE WHEN {s} < {_AP_VALID} THEN 'valid' WHEN {s} < {_AP_LATER_DENIED} THEN 'later' "
          f"WHEN {s} < {_AP_EXPIRED} THEN 'expired' WHEN {s} < {_AP_TIE} THEN 'tie' "
          f"WHEN {s} < {_AP_DENIED_ONLY} THEN 'denied' ELSE 'none' END")
    return f"""
        SELECT fan_id, h, country, ap,
            CASE WHEN ap = 'expired' THEN 200 + 190 * {_u('h', 81)} ELSE 2 + 388 * {_u('h', 81)}
            END AS t0,
            {_weighted(_u('h', 82), _GRANT_SOURCES)} AS g_src,
            {_weighted(_u('h', 83), _DENY_SOURCES)} AS d_src
        FROM (SELECT fan_id, h, country, {ap} AS ap FROM {_TRAITS})
    """


def _consents_sql(as_of_us: int, sizes: DemoSizes, schema: str) -> str:
    """Decisive rows per story (t0 = days before as_of of the first one) plus older history."""
    granted = "ap IN ('valid', 'later', 'expired', 'tie')"
    future = f"-(30 + 335 * {_u('h', 87)})"
    expires = (f"CASE WHEN ap = 'expired' THEN {_ts(as_of_us, 't0 - 180')} "
               f"WHEN {_u('h', 86)} < 0.5 THEN NULL "
               f"ELSE {_ts(as_of_us, future)} END")
    deny_days = f"CASE WHEN ap = 'later' THEN t0 * (0.01 + 0.95 * {_u('h', 88)}) ELSE t0 END"
    hist_n = _count(_history_mean(sizes), _u("h", 84), _u("h", 85))
    return f"""
    INSERT INTO {schema}.consents
    WITH story AS ({_consent_story_sql()})
    SELECT fan_id, 'ads_personalization', 'granted', {_ts(as_of_us, 't0')}, {expires}, g_src
    FROM story WHERE {granted}
    UNION ALL
    SELECT fan_id, 'ads_personalization', 'denied', {_ts(as_of_us, deny_days)}, NULL, d_src
    FROM story WHERE ap IN ('later', 'tie', 'denied')
    UNION ALL
    SELECT fan_id, 'ad_user_data', CASE WHEN {_u('h', 89)} < 0.9 THEN 'granted' ELSE 'denied'
           END, {_ts(as_of_us, 't0')}, NULL, g_src
    FROM story WHERE {granted}
    UNION ALL
    SELECT fan_id, 'sale_or_share', status, {_ts(as_of_us, f"1 + 380 * {_u('h', 91)}")},
           NULL, CASE WHEN status = 'granted' THEN 'first_party'
                      ELSE {_uniform(_u('h', 92), ['usp', 'gpc', 'gpp'])} END
    FROM (SELECT *, CASE WHEN {_u('h', 90)} < 0.7 THEN 'denied' ELSE 'granted' END AS status
          FROM story WHERE country IN ('US', 'CA') AND {_u('h', 93)} < {_SALE_SHARE_US_CA})
    UNION ALL
    SELECT fan_id, 'ads_personalization', status,
           {_ts(as_of_us, f"t0 + 1 + 400 * {_u('hh', 2)}")}, NULL,
           CASE WHEN status = 'granted' THEN {_weighted(_u('hh', 3), _GRANT_SOURCES)}
                ELSE {_weighted(_u('hh', 3), _DENY_SOURCES)} END
    FROM (SELECT *, CASE WHEN ap <> 'denied' AND {_u('hh', 1)} < 0.6 THEN 'granted'
                         ELSE 'denied' END AS status
          FROM (SELECT *, {_row_hash('h', 'k', '94::INTEGER')} AS hh
                FROM story, range({hist_n}) r(k) WHERE ap <> 'none'))
    """


def _suppressions_sql(schema: str) -> str:
    return f"""
    INSERT INTO {schema}.suppressions
    SELECT fan_id FROM {_TRAITS} WHERE {_u('h', 95)} < 0.005
    """


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------

def _naive_utc(as_of: datetime) -> datetime:
    """Aware datetimes are converted to UTC; naive ones are taken to be UTC already."""
    if as_of.tzinfo is not None:
        return as_of.astimezone(UTC).replace(tzinfo=None)
    return as_of


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _create_tables(con: duckdb.DuckDBPyConnection, schema: str) -> None:
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    for table, columns in TABLES.items():
        cols = ", ".join(f"{c} {t}" for c, t in columns)
        if table == "fans":
            cols = cols.replace("fan_id BIGINT", "fan_id BIGINT PRIMARY KEY", 1)
        con.execute(f"DROP TABLE IF EXISTS {schema}.{table}")
        con.execute(f"CREATE TABLE {schema}.{table} ({cols})")


def _statements(
    sizes: DemoSizes, as_of: datetime, seed: int, schema: str
) -> Iterator[tuple[str, str]]:
    as_of_us = round(as_of.replace(tzinfo=UTC).timestamp() * 1_000_000)
    as_of_date = f"DATE '{as_of.date().isoformat()}'"
    yield "traits", _traits_sql(sizes, seed)
    yield "streams", _streams_sql(as_of_us, seed, schema)
    yield "clip_samples", _clips_sql(as_of_us, seed, schema)
    yield "purchases", _purchases_sql(as_of_us, seed, schema)
    yield "checkins", _checkins_sql(as_of_us, seed, schema)
    yield "mood_scores", _moods_sql(as_of_us, seed, schema)
    yield "fans", _fans_sql(as_of_us, as_of_date, schema)
    yield "consents", _consents_sql(as_of_us, sizes, schema)
    yield "suppressions", _suppressions_sql(schema)


def build_demo_warehouse(
    con: duckdb.DuckDBPyConnection,
    *,
    sizes: DemoSizes = DemoSizes(),
    as_of: datetime,
    seed: int = 42,
    schema: str = "main",
) -> dict[str, int]:
    """(Re)create the demo tables in ``schema``; return the row count of every table.

    Existing tables of the same names are replaced. Everything runs in one transaction, so a
    failure leaves the previous tables (or none) rather than a half-built warehouse.
    """
    if sizes.fans < 1:
        raise ValueError(f"DemoSizes.fans must be at least 1, got {sizes.fans}")
    schema_sql = _ident(schema)
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"DROP TABLE IF EXISTS {_TRAITS}")
        _create_tables(con, schema_sql)
        for _name, sql in _statements(sizes, _naive_utc(as_of), seed, schema_sql):
            con.execute(sql)
        con.execute(f"DROP TABLE {_TRAITS}")
        counts = {table: _count_rows(con, f"{schema_sql}.{table}") for table in TABLES}
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    log.info("demo_warehouse_built", schema=schema, seed=seed, **counts)
    return counts


def _count_rows(con: duckdb.DuckDBPyConnection, table: str) -> int:
    row = con.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0]) if row else 0


_PG_TYPES = {"BIGINT": "BIGINT", "VARCHAR": "TEXT", "DATE": "DATE", "TIMESTAMP": "TIMESTAMP",
             "DOUBLE": "DOUBLE PRECISION", "INTEGER": "INTEGER"}


def export_to_postgres(
    con_duck: duckdb.DuckDBPyConnection,
    pg_conninfo: str,
    schema: str,
    *,
    source_schema: str = "main",
    batch_rows: int = 10_000,
) -> None:
    """Copy the demo tables from DuckDB ``source_schema`` into PostgreSQL ``schema`` with COPY.

    Meant for small sizes (rows go through Python). Existing demo tables in the target schema
    are replaced in one PostgreSQL transaction, so readers never see a half-copied warehouse.
    """
    import psycopg
    from psycopg import sql

    with psycopg.connect(pg_conninfo) as pg, pg.cursor() as cur:
        cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        for table, columns in TABLES.items():
            target = sql.Identifier(schema, table)
            col_defs = sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(_PG_TYPES[t]))
                for c, t in columns)
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(target))
            cur.execute(sql.SQL("CREATE TABLE {} ({})").format(target, col_defs))
            names = [c for c, _ in columns]
            result = con_duck.execute(
                f"SELECT {', '.join(names)} FROM {_ident(source_schema)}.{table}")
            copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(
                target, sql.SQL(", ").join(sql.Identifier(n) for n in names))
            with cur.copy(copy_sql) as copy:
                _copy_rows(result, copy, batch_rows)
        cur.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (fan_id)").format(
            sql.Identifier(schema, "fans")))
    log.info("demo_warehouse_exported", schema=schema)


def _copy_rows(result: duckdb.DuckDBPyConnection, copy: Any, batch_rows: int) -> None:
    while rows := result.fetchmany(batch_rows):
        for row in rows:
            copy.write_row(row)
