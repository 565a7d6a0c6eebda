"""A wire-faithful local Salesforce: the REST endpoints, OAuth and SOAP login simple-salesforce uses, over
HTTPS on loopback, with Salesforce's record rules, SOQL, paging, API quota and injectable faults.

- `engine.emulator.testing.RunningEmulator`: start one in a background thread for a test.
- `engine.cli.emulator.emulator_command` / `main`: `smartcampaign emulator` in the foreground.
- `engine.emulator.app.Emulator`: the ASGI app and its state, to embed elsewhere.

See README.md in this folder for the endpoints, the admin API and what the emulator does differently.
"""
