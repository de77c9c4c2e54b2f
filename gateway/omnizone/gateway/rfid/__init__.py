"""UHF RFID in fitting rooms: the R2000-module serial protocol (0xA0 header),
SGTIN-96 decoding, the arrive/depart rules and the pyserial driver."""
