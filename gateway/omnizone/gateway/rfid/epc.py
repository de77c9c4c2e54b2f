"""SGTIN-96 per the GS1 EPC Tag Data Standard: EPC bank hex ↔ GTIN-14 + serial.

Layout (96 bits, big-endian): header 8 (0x30) | filter 3 | partition 3 |
company prefix M | item reference N | serial 38, with M + N = 44 bits split by
the partition table. The item reference carries the GTIN's indicator digit in
front; the GTIN is indicator + company prefix + item reference + check digit.
"""

from dataclasses import dataclass
from typing import Final

SGTIN96_HEADER: Final = 0x30
SERIAL_BITS: Final = 38

# partition -> (company prefix bits, digits, item reference bits, digits)
PARTITIONS: Final[tuple[tuple[int, int, int, int], ...]] = (
    (40, 12, 4, 1),
    (37, 11, 7, 2),
    (34, 10, 10, 3),
    (30, 9, 14, 4),
    (27, 8, 17, 5),
    (24, 7, 20, 6),
    (20, 6, 24, 7),
)


def gs1_check_digit(digits: str) -> int:
    """Mod-10 check digit over the digits that precede it (weights 3,1,... from the right)."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    return (10 - total % 10) % 10


@dataclass(frozen=True, slots=True)
class Sgtin:
    filter: int
    company_prefix: str  # 6..12 digits, leading zeros significant
    item_reference: str  # indicator digit + item reference, 13 - len(company_prefix) digits
    serial: int

    @property
    def gtin(self) -> str:
        body = self.item_reference[0] + self.company_prefix + self.item_reference[1:]
        return body + str(gs1_check_digit(body))

    @property
    def pure_identity_uri(self) -> str:
        return f"urn:epc:id:sgtin:{self.company_prefix}.{self.item_reference}.{self.serial}"

    @property
    def tag_uri(self) -> str:
        return (
            f"urn:epc:tag:sgtin-96:{self.filter}.{self.company_prefix}"
            f".{self.item_reference}.{self.serial}"
        )


def decode_sgtin96(epc: bytes | str) -> Sgtin | None:
    """None for anything that is not a well-formed SGTIN-96 (other EPC schemes,
    wrong length, reserved partition, fields too large for their digits)."""
    if isinstance(epc, str):
        try:
            raw = bytes.fromhex(epc)
        except ValueError:
            return None
    else:
        raw = bytes(epc)
    if len(raw) != 12 or raw[0] != SGTIN96_HEADER:
        return None
    value = int.from_bytes(raw, "big")
    filter_value = (value >> 85) & 0x7
    partition = (value >> 82) & 0x7
    if partition >= len(PARTITIONS):
        return None
    cp_bits, cp_digits, ir_bits, ir_digits = PARTITIONS[partition]
    company = (value >> (SERIAL_BITS + ir_bits)) & ((1 << cp_bits) - 1)
    item = (value >> SERIAL_BITS) & ((1 << ir_bits) - 1)
    if company >= 10**cp_digits or item >= 10**ir_digits:
        return None
    return Sgtin(
        filter=filter_value,
        company_prefix=str(company).zfill(cp_digits),
        item_reference=str(item).zfill(ir_digits),
        serial=value & ((1 << SERIAL_BITS) - 1),
    )


def encode_sgtin96(sgtin: Sgtin) -> bytes:
    """The 12-byte EPC for an SGTIN (the partition follows from the prefix length)."""
    partition = next(
        (p for p, row in enumerate(PARTITIONS) if row[1] == len(sgtin.company_prefix)), None
    )
    if partition is None:
        raise ValueError(
            f"a company prefix of {len(sgtin.company_prefix)} digits has no SGTIN-96 partition"
        )
    cp_bits, _, ir_bits, ir_digits = PARTITIONS[partition]
    if not (sgtin.company_prefix.isdigit() and sgtin.item_reference.isdigit()):
        raise ValueError("company prefix and item reference must be digits")
    if len(sgtin.item_reference) != ir_digits:
        raise ValueError(f"item reference must have {ir_digits} digits with this prefix")
    if not 0 <= sgtin.filter <= 7 or not 0 <= sgtin.serial < (1 << SERIAL_BITS):
        raise ValueError(f"filter {sgtin.filter} or serial {sgtin.serial} out of range")
    value = SGTIN96_HEADER
    value = (value << 3) | sgtin.filter
    value = (value << 3) | partition
    value = (value << cp_bits) | int(sgtin.company_prefix)
    value = (value << ir_bits) | int(sgtin.item_reference)
    value = (value << SERIAL_BITS) | sgtin.serial
    return value.to_bytes(12, "big")


def sgtin_from_gtin(gtin: str, company_prefix_length: int, serial: int, filter: int = 1) -> Sgtin:
    """Split a GTIN-14 into the SGTIN fields (the prefix length comes from GS1, not the GTIN)."""
    if len(gtin) != 14 or not gtin.isdigit():
        raise ValueError(f"{gtin!r} is not a GTIN-14")
    if int(gtin[13]) != gs1_check_digit(gtin[:13]):
        raise ValueError(f"{gtin} has a wrong check digit")
    if not 6 <= company_prefix_length <= 12:
        raise ValueError(f"company prefix length {company_prefix_length} is not 6..12")
    prefix = gtin[1 : 1 + company_prefix_length]
    item = gtin[0] + gtin[1 + company_prefix_length : 13]
    return Sgtin(filter=filter, company_prefix=prefix, item_reference=item, serial=serial)
