"""The ``webhooks`` command as the main CLI will mount it (``add_parser(subparsers)``)."""

from __future__ import annotations

import argparse

import pytest

from sync_pipeline.tenants import TenantConfigError, load_tenants
from sync_pipeline.webhooks import cli, subscriptions


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sync-pipeline")
    parser.add_argument("--tenants-file")
    cli.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_the_sub_commands_parse_to_their_handlers():
    serve = parse("webhooks", "serve", "--host", "0.0.0.0", "--port", "9000")
    assert (serve.handler, serve.host, serve.port) == (cli.cmd_serve, "0.0.0.0", 9000)
    sub = parse("webhooks", "subscribe", "--tenant", "acme", "--public-url", "https://x.no")
    assert (sub.handler, sub.tenant, sub.public_url) == (cli.cmd_subscribe, "acme", "https://x.no")
    assert parse("webhooks", "status", "--tenant", "acme").handler is cli.cmd_status
    with pytest.raises(SystemExit):
        parse("webhooks", "subscribe", "--tenant", "acme")  # --public-url is required


@pytest.mark.parametrize("url", ["http://sync.example.no", "ftp://x", "sync.example.no"])
def test_subscribe_refuses_a_public_url_that_is_not_https(tenants_file, url):
    args = parse(
        "--tenants-file",
        str(tenants_file),
        "webhooks",
        "subscribe",
        "--tenant",
        "acme",
        "--public-url",
        url,
    )
    with pytest.raises(TenantConfigError, match="https"):
        args.handler(args)


def test_subscribe_names_a_missing_secret_and_an_unknown_tenant(tenants_file):
    tenant = load_tenants(tenants_file)["svennonly"]
    with pytest.raises(TenantConfigError, match=r"webhooks\.tripletex_secret"):
        subscriptions.ensure(tenant, "https://sync.example.no")
    args = parse("--tenants-file", str(tenants_file), "webhooks", "status", "--tenant", "nobody")
    with pytest.raises(TenantConfigError, match="unknown tenant 'nobody'"):
        args.handler(args)
