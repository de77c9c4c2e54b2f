"""Staff writing shelf tags: the real writer against emulated writable tags."""

import json

import typer
from typer.testing import CliRunner

from omnizone.gateway.nfc.cli import nfc_write
from omnizone.gateway.nfc.ndef import parse_ndef, uri_message
from omnizone.gateway.nfc.writer import write_product_tag
from omnizone.sim.devices.nfc_tag import EmulatedType2Tag, EmulatedType3Tag, NfcTagEmulator

URL = "https://shop.example/app/p/03614272049529"
OLD = "https://old.example/promo"


def test_a_blank_type3_tag_is_formatted_written_and_verified(emulator: NfcTagEmulator) -> None:
    tag = EmulatedType3Tag(bytes.fromhex("02fe00000000b001"), blank=True)
    assert tag.ndef_octets() is None
    emulator.present(tag)
    result = write_product_tag(emulator.device, URL, 10, targets=("212F",))
    assert result.ok and result.verified and result.formatted, result.error
    assert (result.uid, result.tag_type) == ("02fe00000000b001", "Type3Tag")
    assert result.bytes_written == len(uri_message(URL))
    assert tag.ndef_octets() == uri_message(URL)  # what is in the tag's memory now


def test_an_ntag_style_type2_tag_is_overwritten(emulator: NfcTagEmulator) -> None:
    tag = EmulatedType2Tag(bytes.fromhex("05a1b2c3d4e5f6"), uri_message(OLD))
    emulator.present(tag)
    result = write_product_tag(emulator.device, URL, 10, targets=("106A",))
    assert result.ok and not result.formatted, result.error
    assert (result.tag_type, result.capacity) == ("Type2Tag", 142)
    stored = tag.ndef_octets()
    assert stored is not None and parse_ndef(stored).uri == URL


def test_a_locked_tag_is_reported_not_written(emulator: NfcTagEmulator) -> None:
    tag = EmulatedType3Tag(bytes.fromhex("02fe00000000b002"), uri_message(OLD), writable=False)
    emulator.present(tag)
    result = write_product_tag(emulator.device, URL, 10, targets=("212F",))
    assert not result.ok
    assert result.error == "the tag is read-only (locked)"
    assert tag.ndef_octets() == uri_message(OLD)


def test_a_url_too_long_for_the_tag_is_refused(emulator: NfcTagEmulator) -> None:
    tag = EmulatedType2Tag(bytes.fromhex("05a1b2c3d4e5f7"), data_bytes=48)
    emulator.present(tag)
    result = write_product_tag(emulator.device, URL + "?" + "x" * 60, 10, targets=("106A",))
    assert not result.ok and result.error is not None and "do not fit" in result.error
    assert tag.ndef_octets() == b""


def test_no_tag_within_the_timeout_is_an_error_not_a_hang(emulator: NfcTagEmulator) -> None:
    result = write_product_tag(emulator.device, URL, 0.2, targets=("212F",))
    assert not result.ok and result.error == "no tag presented within 0.2 s"


def test_bad_urls_and_missing_readers_are_reported() -> None:
    assert write_product_tag("usb", "shop.example/p", 1).error is not None
    missing = write_product_tag("tty:NOSUCHNFC0:pn532", URL, 1)
    assert not missing.ok and "cannot open NFC reader" in str(missing.error)


def cli() -> typer.Typer:
    app = typer.Typer()
    app.command("nfc-write")(nfc_write)
    app.command("other")(lambda: None)  # keep nfc-write a subcommand, as in `omnizone gateway`
    return app


def test_the_cli_writes_a_gtin_product_page(emulator: NfcTagEmulator) -> None:
    tag = EmulatedType2Tag(bytes.fromhex("05a1b2c3d4e5f8"))
    emulator.present(tag)
    outcome = CliRunner().invoke(
        cli(),
        [
            "nfc-write",
            "--device",
            emulator.device,
            "--gtin",
            "3614272049529",
            "--base-url",
            "https://shop.example",
            "--timeout",
            "10",
            "--json",
        ],
    )
    assert outcome.exit_code == 0, outcome.output
    printed = json.loads(outcome.stdout)
    assert printed["ok"] is True and printed["url"] == URL and printed["uid"] == "05a1b2c3d4e5f8"
    assert tag.ndef_octets() == uri_message(URL)


def test_the_cli_wants_exactly_one_of_gtin_and_url() -> None:
    runner = CliRunner()
    both = runner.invoke(cli(), ["nfc-write", "--gtin", "3614272049529", "--url", URL])
    assert both.exit_code == 2 and "exactly one of --gtin or --url" in both.output
    no_base = runner.invoke(
        cli(), ["nfc-write", "--gtin", "3614272049529"], env={"OMNIZONE_APP_BASE_URL": None}
    )
    assert no_base.exit_code == 2 and "--base-url" in no_base.output
    bad_gtin = runner.invoke(
        cli(), ["nfc-write", "--gtin", "3614272049528", "--base-url", "https://shop.example"]
    )
    assert bad_gtin.exit_code == 2 and "check digit" in bad_gtin.output
