"""CRM adapters: the protocol the interpreter speaks, the embedded local org, and Salesforce."""
