"""read_signals: a signal CSV becomes exactly the expected consent rows and line errors."""

from __future__ import annotations

import os
import threading
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from consent_filter.signals import ConsentRow, SignalError, read_signals
from tests.consent.test_signals_tcf import PUBLISHED_BITFIELD, PUBLISHED_V23, V22, tc_string

GRANTED, DENIED = "granted", "denied"
V22_STRING = tc_string(V22)  # purposes 1, 3, 4, 7; vendor 755
V22_NO_ADS_SPEC = replace(V22, purposes=frozenset({1, 2}))
V22_NO_ADS = tc_string(V22_NO_ADS_SPEC)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8", newline="")
    return path


def _tcf_rows(key: str, at: datetime, granted: set[int], ads: str) -> list[ConsentRow]:
    rows = [
        ConsentRow(key, f"tcf.{p}", GRANTED if p in granted else DENIED, at, None, "tcf")
        for p in range(1, 12)
    ]
    rows.append(ConsentRow(key, "ads_personalization", ads, at, None, "tcf"))
    return rows


def _opt_out_rows(key: str, at: datetime, source: str) -> list[ConsentRow]:
    return [
        ConsentRow(key, "sale_or_share", DENIED, at, None, source),
        ConsentRow(key, "ads_personalization", DENIED, at, None, source),
    ]


def _errors(items: list[ConsentRow | SignalError]) -> dict[int, str]:
    return {item.line: item.reason for item in items if isinstance(item, SignalError)}


def test_tcf_file_with_good_and_bad_lines(tmp_path: Path) -> None:
    csv_text = (
        "profile_key,signal,captured_at\r\n"  # 1 header
        f"p1,{V22_STRING},2024-05-01T10:00:00\r\n"  # 2 naive time: UTC
        f"p2,{PUBLISHED_BITFIELD},2024-05-01T10:00:00Z\r\n"  # 3 TCF v2.0
        f"p3,{V22_STRING}\r\n"  # 4 two columns
        "\r\n"  # 5 blank: skipped
        f"p4,{V22_STRING},yesterday\r\n"  # 6 not a time
        f",{V22_STRING},2024-05-01T10:00:00\r\n"  # 7 no key
        "p5,not-a-tc-string!,2024-05-01T10:00:00\r\n"  # 8 garbage
        f"p6,{V22_NO_ADS},2024-05-01T12:30:00+02:00\r\n"  # 9 offset time
        f"p7,{V22_STRING},2024-05-01T10:00:00,extra\r\n"  # 10 four columns
        f"p8,{V22_STRING},\r\n"  # 11 no time
    )
    items = list(read_signals(_write(tmp_path / "tcf.csv", csv_text), "tcf", vendor_id=755))

    ten = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    half_past = datetime(2024, 5, 1, 10, 30, tzinfo=UTC)
    rows = [item for item in items if isinstance(item, ConsentRow)]
    assert rows == [
        *_tcf_rows("p1", ten, {1, 3, 4, 7}, GRANTED),
        *_tcf_rows("p6", half_past, {1, 2}, DENIED),
    ]
    errors = _errors(items)
    assert sorted(errors) == [3, 4, 6, 7, 8, 10, 11]
    assert errors[3].startswith(
        "invalid TC string 'CLcVDxRMWfGm…': TCF policy version 2 is below 4"
    )
    assert errors[4] == "expected 3 columns (profile key, signal, captured time), found 2"
    assert errors[6] == "captured time 'yesterday' is not an ISO 8601 date-time"
    assert errors[7] == "empty profile key"
    assert errors[8] == (
        "invalid TC string 'not-a-tc-str…': "
        "not a TC string: segments must be non-empty unpadded base64url"
    )
    assert errors[10] == "expected 3 columns (profile key, signal, captured time), found 4"
    assert errors[11] == "missing captured time"
    # Items come in file order: line 2's rows, the errors of 3, 4, 6, 7, 8, then line 9's rows.
    assert [type(item).__name__ for item in items[12:18]] == ["SignalError"] * 5 + ["ConsentRow"]


def test_error_reasons_show_only_a_prefix_of_the_signal(tmp_path: Path) -> None:
    path = _write(tmp_path / "s.csv", f"p1,{PUBLISHED_BITFIELD},2024-05-01\n")
    [error] = read_signals(path, "tcf")
    assert isinstance(error, SignalError)
    assert PUBLISHED_BITFIELD[:12] in error.reason
    assert PUBLISHED_BITFIELD[:13] not in error.reason


def test_configured_vendor_decides_ads_personalization(tmp_path: Path) -> None:
    path = _write(tmp_path / "s.csv", f"p1,{PUBLISHED_V23},2024-05-01T00:00:00Z\n")
    at = datetime(2024, 5, 1, tzinfo=UTC)
    everything = set(range(1, 12))
    assert list(read_signals(path, "tcf")) == _tcf_rows("p1", at, everything, GRANTED)
    # GDPR-IAB-TCFv2 t/05-tcf-v23.t: vendor 46 has no consent in this string.
    assert list(read_signals(path, "tcf", vendor_id=46)) == _tcf_rows("p1", at, everything, DENIED)


def test_repeated_signals_give_rows_for_each_line(tmp_path: Path) -> None:
    lines = "".join(f"p{i},{V22_STRING},2024-05-0{i}T00:00:00\n" for i in range(1, 4))
    items = list(read_signals(_write(tmp_path / "s.csv", lines), "tcf", vendor_id=755))
    assert items == [
        row
        for i in range(1, 4)
        for row in _tcf_rows(f"p{i}", datetime(2024, 5, i, tzinfo=UTC), {1, 3, 4, 7}, GRANTED)
    ]


def test_usp_file(tmp_path: Path) -> None:
    csv_text = "profile_key,signal,captured_at\nu1,1YYN,2024-01-02T03:04:05\nu2,1YNN,2024-01-02\n"
    csv_text += "u3,1YN,2024-01-02\nu4,2YNN,2024-01-02\nu5,1---,2024-01-02\n"
    items = list(read_signals(_write(tmp_path / "usp.csv", csv_text), "usp"))
    assert [item for item in items if isinstance(item, ConsentRow)] == _opt_out_rows(
        "u1", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "usp"
    )
    assert _errors(items) == {
        4: "invalid US Privacy string '1YN': "
        "US Privacy string must be 4 characters (like 1YNN), got 3",
        5: "invalid US Privacy string '2YNN': US Privacy version must be 1",
    }


def test_gpc_file(tmp_path: Path) -> None:
    csv_text = (
        "g1,Sec-GPC: 1,2024-01-01T00:00:00Z\n"
        "g2,0,2024-01-01\n"
        "g3,,2024-01-01\n"  # empty GPC column: no signal
        '"g4",maybe,2024-01-01\n'
    )
    items = list(read_signals(_write(tmp_path / "gpc.csv", csv_text), "gpc"))
    assert [item for item in items if isinstance(item, ConsentRow)] == _opt_out_rows(
        "g1", datetime(2024, 1, 1, tzinfo=UTC), "gpc"
    )
    assert list(_errors(items)) == [4]
    assert _errors(items)[4].startswith("invalid GPC value 'maybe': GPC value must be")


def test_gpp_file(tmp_path: Path) -> None:
    csv_text = (
        "k1,DBABLA~BVVVkkkklWA.YA,2024-01-01T00:00:00\n"
        "k2,DBABLA~BVQqAAAAAgA.QA,2024-01-01T00:00:00\n"
        "k3,DBACNYA~CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA~1YNN,2024-01-01T00:00:00\n"
    )
    items = list(read_signals(_write(tmp_path / "gpp.csv", csv_text), "gpp"))
    assert [item for item in items if isinstance(item, ConsentRow)] == _opt_out_rows(
        "k1", datetime(2024, 1, 1, tzinfo=UTC), "gpp"
    )
    assert _errors(items) == {
        3: "invalid GPP string 'DBACNYA~CPXx…': no US national section (GPP section 7) in the "
        "GPP string"
    }


def test_line_numbers_count_physical_lines(tmp_path: Path) -> None:
    csv_text = '"a\nb",1YYN,2024-01-01\nu2,1YYN,bad\n\n\nu3,1X,2024-01-01\n'
    items = list(read_signals(_write(tmp_path / "s.csv", csv_text), "usp"))
    rows = [item for item in items if isinstance(item, ConsentRow)]
    assert [row.profile_key for row in rows] == ["a\nb", "a\nb"]
    assert sorted(_errors(items)) == [3, 6]


def test_byte_order_mark_header_and_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_bytes(
        b"\xef\xbb\xbfprofile_key,signal,captured_at\nu\xff1,1YYN,2024-01-01\nu2,1YYN,2024-01-01\n"
    )
    items = list(read_signals(path, "usp"))
    assert _errors(items) == {2: "line is not valid UTF-8"}
    assert [item for item in items if isinstance(item, ConsentRow)] == _opt_out_rows(
        "u2", datetime(2024, 1, 1, tzinfo=UTC), "usp"
    )


def test_header_is_only_recognised_on_the_first_line(tmp_path: Path) -> None:
    csv_text = "u1,1YYN,2024-01-01\nprofile_key,signal,captured_at\n"
    items = list(read_signals(_write(tmp_path / "s.csv", csv_text), "usp"))
    assert _errors(items) == {2: "captured time 'captured_at' is not an ISO 8601 date-time"}


def test_unreadable_csv_line_is_an_error_and_the_file_continues(tmp_path: Path) -> None:
    csv_text = f"u1,{'Y' * 200_000},2024-01-01\nu2,1YYN,2024-01-01\n"
    items = list(read_signals(_write(tmp_path / "s.csv", csv_text), "usp"))
    assert _errors(items) == {1: "unreadable CSV line: field larger than field limit (131072)"}
    assert len([item for item in items if isinstance(item, ConsentRow)]) == 2


def test_lines_are_streamed_not_loaded_up_front(tmp_path: Path) -> None:
    fifo = tmp_path / "signals.fifo"
    os.mkfifo(fifo)
    first_row_seen = threading.Event()
    writer_saw_row: list[bool] = []

    def write() -> None:
        with fifo.open("w", encoding="utf-8") as pipe:
            pipe.write("u1,1YYN,2024-01-01\n")
            pipe.flush()
            # The reader must produce line 1's rows while the file is still open.
            writer_saw_row.append(first_row_seen.wait(timeout=60))
            pipe.write("u2,1YYN,2024-01-02\n")

    writer = threading.Thread(target=write)
    writer.start()
    items = read_signals(fifo, "usp")
    first = next(items)
    first_row_seen.set()
    rest = list(items)
    writer.join()
    assert writer_saw_row == [True]
    assert isinstance(first, ConsentRow) and first.profile_key == "u1"
    assert [item.profile_key for item in rest if isinstance(item, ConsentRow)] == ["u1", "u2", "u2"]


def test_bad_arguments_fail_before_reading(tmp_path: Path) -> None:
    path = _write(tmp_path / "s.csv", "u1,1YYN,2024-01-01\n")
    with pytest.raises(ValueError, match="unknown signal format 'tcf2'"):
        read_signals(path, "tcf2")
    with pytest.raises(ValueError, match="vendor_id must be an IAB vendor ID"):
        read_signals(path, "tcf", vendor_id=0)
    with pytest.raises(FileNotFoundError, match="signal file not found"):
        read_signals(tmp_path / "missing.csv", "tcf")


def test_strings_differing_only_in_timestamps_decide_alike(tmp_path: Path) -> None:
    """Each CMP stamps its string with Created/LastUpdated; the decode cache ignores the stamps
    but every line still gets its own decisions (and a wrong stamp region its own error)."""
    later = tc_string(replace(V22, created=datetime(2025, 7, 9, 13, 14, 15, tzinfo=UTC)))
    no_ads_later = tc_string(replace(V22_NO_ADS_SPEC, created=datetime(2025, 7, 9, 13, 14, 15, tzinfo=UTC)))
    assert later != V22_STRING and later[0] + later[13:] == V22_STRING[0] + V22_STRING[13:]
    broken = V22_STRING[0] + "!" * 12 + V22_STRING[13:]
    lines = (f"p1,{V22_STRING},2024-05-01T00:00:00\np2,{later},2024-05-01T00:00:00\n"
             f"p3,{no_ads_later},2024-05-01T00:00:00\np4,{broken},2024-05-01T00:00:00\n")
    items = list(read_signals(_write(tmp_path / "s.csv", lines), "tcf", vendor_id=755))
    at = datetime(2024, 5, 1, tzinfo=UTC)
    rows = [item for item in items if isinstance(item, ConsentRow)]
    assert rows == (_tcf_rows("p1", at, {1, 3, 4, 7}, GRANTED) + _tcf_rows("p2", at, {1, 3, 4, 7}, GRANTED)
                    + _tcf_rows("p3", at, {1, 2}, DENIED))
    errors = _errors(items)
    assert list(errors) == [4]
    assert "not a TC string" in errors[4] and "!!!" in errors[4]
