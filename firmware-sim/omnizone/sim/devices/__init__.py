"""Emulated hardware at each driver's own boundary: bleak backends fed with raw
advertising bytes, a UHF reader speaking its serial protocol on a
pseudo-terminal, NFC through nfcpy's own UDP driver."""
