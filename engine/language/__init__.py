"""The rule language: parser, typed AST, semantic checks, diagnostics and formatter."""
