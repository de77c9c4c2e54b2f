from omnizone.cli import app

app(prog_name="omnizone")
