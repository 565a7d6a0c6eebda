// Starts `smartcampaign lsp` over stdio for .campaign files.
const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const settings = vscode.workspace.getConfiguration("smartcampaign");
  const args = ["lsp"];
  const db = settings.get("db");
  if (db) {
    args.push("--db", db);
  }
  const server = { command: settings.get("command") || "smartcampaign", args };
  client = new LanguageClient(
    "smartcampaign",
    "smartcampaign",
    { run: server, debug: server },
    { documentSelector: [{ scheme: "file", language: "smartcampaign" }] }
  );
  context.subscriptions.push({ dispose: () => client && client.stop() });
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
