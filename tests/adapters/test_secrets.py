"""Secrets never reach a journal, a log or the command line unwarned:
masked by key and by value, HTTP headers never journaled, credentials from
the environment or an owner-only file."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

import pytest

from tidemark.adapters import logs
from tidemark.adapters.ccxt_errors import one_line
from tidemark.adapters.cli import _ccxt_options, main
from tidemark.adapters.secrets import CredentialsError, credentials_from_env, mask_options, read_credentials

TOKEN = "tmk-bearer-0c9e1f"
PASSPHRASE = "tmk-pass-77aa"
SIGNATURE = "tmk-sig-31d0"
KEY = "tmk-key-5d1e0c77"


def test_masking_is_by_key_and_by_value_and_headers_are_never_kept() -> None:
    options = {
        "headers": {"Authorization": f"Bearer {TOKEN}", "X-Trace": "abc"},
        "passphrase": PASSPHRASE,
        "options": {"signature": SIGNATURE, "brokerId": f"id-{KEY}", "defaultType": "future"},
        "credentials": {"user": "me", "pin": "1234"},
        "apiKey": KEY,
        "urls": {"api": {"ws": f"wss://example.test/stream?token={TOKEN}"}},
        "timeout": 3000,
    }
    masked = mask_options(options, extra=[TOKEN])
    text = json.dumps(masked)
    for secret in (TOKEN, PASSPHRASE, SIGNATURE, KEY, "1234", "abc"):
        assert secret not in text, secret
    assert masked["headers"] == {"Authorization": "***", "X-Trace": "***"}
    assert masked["options"]["brokerId"] == "id-***" and masked["options"]["defaultType"] == "future"
    assert masked["urls"]["api"]["ws"] == "wss://example.test/stream?token=***"
    assert masked["timeout"] == 3000


def test_credentials_come_from_the_environment_under_either_name() -> None:
    env = {"TIDEMARK_API_KEY": KEY, "TIDEMARK_API_PASSPHRASE": PASSPHRASE, "TIDEMARK_SECRET": "s3cret", "HOME": "/"}
    assert credentials_from_env(env) == {"apiKey": KEY, "password": PASSPHRASE, "secret": "s3cret"}


def test_a_credentials_file_must_be_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "creds.json"
    path.write_text(json.dumps({"apiKey": KEY}))
    path.chmod(0o644)
    with pytest.raises(CredentialsError, match=r"readable by others .* chmod 600"):
        read_credentials(path)
    path.chmod(0o600)
    assert read_credentials(path) == {"apiKey": KEY}


def args(**kwargs: object) -> argparse.Namespace:
    return argparse.Namespace(**{"ccxt_options": None, "ccxt_option": [], "credentials": None, **kwargs})


def test_a_secret_on_the_command_line_is_warned_about(capsys: pytest.CaptureFixture[str]) -> None:
    options = _ccxt_options(args(ccxt_option=[f"secret={KEY}", "headers.Authorization=Bearer x", "timeout=5"]))
    assert options["secret"] == KEY
    err = capsys.readouterr().err
    assert "--ccxt-option secret=... puts a secret on the command line" in err
    assert "--ccxt-option headers.Authorization=..." in err and "timeout" not in err
    assert KEY not in err


def test_an_options_file_with_credentials_that_others_can_read_is_warned_about(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "opts.json"
    path.write_text(json.dumps({"apiKey": KEY}))
    path.chmod(0o644)
    _ccxt_options(args(ccxt_options=str(path)))
    assert "holds credentials and other users can read it" in capsys.readouterr().err


def test_a_credentials_file_open_to_others_is_refused_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "creds.json"
    path.write_text(json.dumps({"apiKey": KEY}))
    path.chmod(0o640)
    code = main(["paper", "--exchange", "binanceusdm", "--symbol", "BTC/USDT:USDT", "--credentials", str(path)])
    assert code == 2 and "chmod 600" in capsys.readouterr().err


def test_exchange_errors_are_journaled_and_logged_with_secrets_masked() -> None:
    logs.register_secret(TOKEN)
    assert TOKEN not in one_line(RuntimeError(f"GET /x failed: header Authorization: Bearer {TOKEN}"))


def test_a_session_journals_no_secret_given_any_way(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.adapters.test_paper import FAST_CROSS, SYMBOL, funding_may_lag
    from tests.standin.usdm_live import UsdmLiveStandIn
    from tidemark.adapters.live_feed import FeedSettings
    from tidemark.adapters.paper import PaperOptions, run_paper

    monkeypatch.setenv("TIDEMARK_API_KEY", KEY)
    server = UsdmLiveStandIn(shared_data, speed=30)
    server.start()
    try:
        strategy = tmp_path / "fast.py"
        strategy.write_text(FAST_CROSS)
        ccxt_options = {
            **server.ccxt_options(),
            "headers": {"Authorization": f"Bearer {TOKEN}"},
            "passphrase": PASSPHRASE,
            "options": {"signature": SIGNATURE, "brokerId": f"id-{KEY}", "fetchCurrencies": False},
        }
        options = PaperOptions(
            "binanceusdm",
            [SYMBOL],
            str(strategy),
            duration=2.0,
            journal=tmp_path / "s.journal",
            ccxt_options=ccxt_options,
            bar_interval="1s",
            settings=FeedSettings(funding_poll=0.2),
            config=funding_may_lag(tmp_path),
        )
        path = asyncio.run(run_paper(options))
    finally:
        server.stop()
    blob = path.read_bytes()
    for secret in (KEY, TOKEN, PASSPHRASE, SIGNATURE):
        assert secret.encode() not in blob, secret
