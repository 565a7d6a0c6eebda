"""The smartcampaign language server (`smartcampaign lsp`): diagnostics, formatting, hover, definition, completion."""
