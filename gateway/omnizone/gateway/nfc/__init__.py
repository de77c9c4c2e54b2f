"""NFC tap points: an nfcpy reader at a shelf or kiosk, debounced taps, shelf-tag writing."""
