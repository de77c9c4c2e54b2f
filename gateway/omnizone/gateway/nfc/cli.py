"""`omnizone gateway nfc-write`: staff write a shelf tag that opens a product page."""

import json
from typing import Annotated

import typer


def nfc_write(
    device: Annotated[
        str, typer.Option("--device", "-d", help="nfcpy reader: usb, tty:USB0:pn532, udp:host:port")
    ] = "usb",
    gtin: Annotated[
        str | None, typer.Option("--gtin", help="product GTIN (8/12/13/14 digits)")
    ] = None,
    url: Annotated[str | None, typer.Option("--url", help="write this URL instead")] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url",
            envvar="OMNIZONE_APP_BASE_URL",
            help="shopper app address, e.g. https://shop.example (used with --gtin)",
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1, help="seconds to wait for a tag")
    ] = 30.0,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Write a product-page URL to an NFC shelf tag and verify it by reading it back."""
    from omnizone.gateway.nfc.ndef import product_url
    from omnizone.gateway.nfc.writer import write_product_tag

    if (gtin is None) == (url is None):
        raise typer.BadParameter("give exactly one of --gtin or --url")
    if gtin is not None:
        if base_url is None:
            raise typer.BadParameter("--gtin needs --base-url (or OMNIZONE_APP_BASE_URL)")
        try:
            target_url = product_url(base_url, gtin)
        except ValueError as error:
            raise typer.BadParameter(str(error)) from None
    else:
        assert url is not None
        target_url = url
    if not as_json:
        typer.echo(f"Hold a tag to the reader ({device}) within {timeout:g} s…", err=True)
    result = write_product_tag(device, target_url, timeout)
    if as_json:
        typer.echo(json.dumps(result.as_dict()))
    elif result.ok:
        formatted = " (formatted first)" if result.formatted else ""
        typer.echo(
            f"wrote {result.url} to {result.tag_type} {result.uid}{formatted}: "
            f"{result.bytes_written}/{result.capacity} bytes, verified"
        )
    else:
        typer.secho(f"not written: {result.error}", fg=typer.colors.RED, err=True)
    if not result.ok:
        raise typer.Exit(1)
