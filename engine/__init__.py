"""smartcampaign: Marketo-style smart campaigns over Salesforce, as code."""

__version__ = "0.1.0"
