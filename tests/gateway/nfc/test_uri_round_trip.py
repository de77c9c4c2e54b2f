"""Shelf-tag URLs read back exactly (issue 16): a query, `%` escapes, `;` and
non-ASCII text go through `gateway nfc-write` and the tap reader unchanged,
over nfcpy's own UDP driver against emulated tags (no mock above nfcpy)."""

import json

import ndef
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omnizone.gateway.nfc.ndef import parse_ndef, uri_message
from omnizone.gateway.nfc.writer import write_product_tag
from omnizone.gateway.node import GatewayNode
from omnizone.gateway.outbox import Outbox
from omnizone.sim.devices.nfc_tag import EmulatedType3Tag, NfcTagEmulator

from .conftest import FakeClock, Wait
from .test_reader import MakeReader, make_reader, nfc_taps, tap  # noqa: F401 (fixture)

BASE = "https://shop.example/app/p/03614272049529"

#: Each of these came back altered through ndeflib's `.uri` (issue 16).
AWKWARD = [
    BASE + "?src=shelf&store=rivoli",
    BASE + "?q=jean%20slim&size=32%2F34",
    "https://shop.example/app/p/03614272049529;jsessionid=abc?x=1#avis",
    "https://shop.example/app/p/café-crème?couleur=bleu+nuit",
    "https://boutique.example/app/p/03614272049529?ville=Zürich&note=5★",
    "http://www.shop.example/p/%E2%82%AC?price=€10",
]


def _old_reading(octets: bytes) -> str:
    """What the tap reader used to publish: ndeflib's converted `.uri`."""
    [record] = list(ndef.message_decoder(octets))
    return str(record.uri)


def test_ndeflib_uri_alters_these_urls_which_is_why_the_gateway_reads_iri() -> None:
    """The fixture list is meaningful: the old reading differs for each."""
    for url in AWKWARD:
        assert _old_reading(uri_message(url)) != url, url


@pytest.mark.parametrize("url", AWKWARD)
def test_the_message_decodes_to_the_very_url(url: str) -> None:
    assert parse_ndef(uri_message(url)).uri == url
    poster = b"".join(ndef.message_encoder([ndef.SmartposterRecord(url)]))
    assert parse_ndef(poster).uri == url


# Path, query and fragment text: any printable character a URL on a tag can
# carry, ASCII punctuation, escapes and non-ASCII letters and symbols alike.
_TEXT = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="#?\\ "
    ),
    max_size=24,
)
_ESCAPE = st.integers(0, 255).map(lambda b: f"%{b:02X}")
_SEGMENT = st.lists(
    st.one_of(_TEXT, _ESCAPE, st.sampled_from([";", "&", "=", "+", "/"])), max_size=6
)
URLS = st.builds(
    lambda scheme, host, path, query, fragment: (
        f"{scheme}://{host}/{''.join(path)}"
        + (f"?{''.join(query)}" if query else "")
        + (f"#{''.join(fragment)}" if fragment else "")
    ),
    st.sampled_from(["https", "http"]),
    st.sampled_from(["shop.example", "www.shop.example", "boutique-rivoli.example:8443"]),
    _SEGMENT,
    _SEGMENT,
    st.lists(_TEXT, max_size=1),
)


@given(URLS)
def test_every_url_decodes_exactly_to_itself(url: str) -> None:
    message = uri_message(url)
    assert parse_ndef(message).uri == url
    assert message == uri_message(parse_ndef(message).uri or "")  # and re-encodes the same


@pytest.mark.parametrize("url", AWKWARD)
def test_nfc_write_verifies_a_correct_write(emulator: NfcTagEmulator, url: str) -> None:
    # Type 3 tags: the Type 2 emulation (firmware-sim) now and then answers a
    # command late under load and nfcpy pairs answers with the wrong command.
    tag = EmulatedType3Tag(bytes.fromhex("02fe00000000c0df"))
    emulator.present(tag)
    result = write_product_tag(emulator.device, url, 10, targets=("212F",))
    assert result.ok and result.verified, result.error
    stored = tag.ndef_octets()
    assert stored == uri_message(url) and parse_ndef(stored).uri == url


def test_nfc_write_verifies_generated_urls_through_the_emulated_reader() -> None:
    """The property through the nfcpy boundary: every generated URL the writer
    puts on a tag is reported verified, and the tag's memory decodes to it."""
    with NfcTagEmulator() as emulator:

        @settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(URLS)
        def write_and_verify(url: str) -> None:
            tag = EmulatedType3Tag(bytes.fromhex("02fe00000000c0de"))
            emulator.present(tag)
            try:
                result = write_product_tag(emulator.device, url, 10, targets=("212F",))
            finally:
                emulator.remove()
            assert result.ok and result.verified, (url, result.error)
            stored = tag.ndef_octets()
            assert stored is not None and parse_ndef(stored).uri == url

        write_and_verify()


def test_the_tap_reader_publishes_each_url_exactly(
    make_reader: MakeReader,  # noqa: F811 (the fixture imported above)
    emulator: NfcTagEmulator,
    outbox: Outbox,
    node: GatewayNode,
    clock: FakeClock,
    wait: Wait,
) -> None:
    reader = make_reader(targets=("106A", "212F"))
    for i, url in enumerate(AWKWARD):
        clock.now_ms += 60_000
        uid = bytes([0x02, 0xFE, 0, 0, 0, 0, 0xD0, i])
        tap(emulator, reader, EmulatedType3Tag(uid, uri_message(url)), wait)
    published = [uri for _, uri, _, _ in nfc_taps(outbox)]
    assert published == AWKWARD, reader.last_error
    assert reader.counters()["ndef_errors"] == 0


def test_the_nfc_write_command_reports_a_url_with_a_query_as_written(
    emulator: NfcTagEmulator,
) -> None:
    """The symptom of issue 16: a correct write reported as failed (exit 1)."""
    from typer.testing import CliRunner

    from .test_writer import cli

    url = AWKWARD[0]
    emulator.present(EmulatedType3Tag(bytes.fromhex("02fe00000000c0e0")))
    arguments = ["nfc-write", "--device", emulator.device, "--url", url, "--timeout", "10"]
    outcome = CliRunner().invoke(cli(), [*arguments, "--json"])
    assert outcome.exit_code == 0, outcome.output
    printed = json.loads(outcome.stdout)
    assert printed["ok"] is True and printed["verified"] is True and printed["url"] == url
