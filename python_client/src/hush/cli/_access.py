"""hush access show|grant|revoke: scoped grants, capabilities on name prefixes.

`hush grant/revoke ROLE TENANT` (_admin.py) stay the whole-tenant shorthand.
Capabilities are named with a repeated --capability (-c), like put's --tag: one
word per option, so the shell needs no quoting and click checks each name.
"""
from __future__ import annotations

import click

from .. import Tenants
from .._access import CAPABILITIES, AccessGrant
from ._common import connect, fails_cleanly, json_option, print_json, print_table

WHOLE = "(whole tenant)"


def _prefix(prefix: str) -> str:
    return repr(prefix) if prefix else WHOLE


@click.group()
def access() -> None:
    """Scoped grants: which capabilities a role has on which names of a tenant.

    A grant lets ROLE use capabilities on the secrets (for oauth_use and
    oauth_manage: the OAuth providers) whose names start with a prefix; the
    prefix is literal (no wildcards), '' (the default) is the whole tenant.
    Grants add up; there are no deny rules. read, write, delete and destroy
    each imply list on the same prefix. Names outside a role's prefixes look absent to its reads
    and listings; its writes there are refused (exit 4).

    Capabilities: read (values), list (names and metadata), write (save,
    update), delete (soft delete, restore), destroy, oauth_use (tokens),
    oauth_manage (providers, authorize, revoke), audit (hush.audit_log).

    `hush grant ROLE TENANT` is the whole-tenant shorthand: every capability
    ROLE can call when it runs. grant and revoke need hush_admin; show too,
    except for a role asking about itself.

    \b
    Examples:
      hush access grant payments_app acme --prefix payments/ -c read
      hush access grant oncall acme -c list
      hush access revoke ci_deployer acme --prefix ci/ -c destroy
      hush access show payments_app acme --json"""


@access.command()
@click.argument("role")
@click.argument("tenant")
@json_option
@click.pass_context
@fails_cleanly
def show(ctx: click.Context, role: str, tenant: str, as_json: bool) -> None:
    """What ROLE may do in TENANT, and why (hush.effective_access).

    One row per capability and prefix: the grant that gives it (its tenant,
    '*' for every tenant, and its role: ROLE or a role whose privileges ROLE
    has), what implies it (a list given by read or write) and whether ROLE can
    call that capability's functions now (it holds the hush role they need)."""
    with connect(ctx) as conn:
        entries = Tenants(conn).effective_access(role, tenant)
    if as_json:
        print_json(entries)
        return
    if not entries:
        click.echo(f"{role} holds no grant on {tenant}", err=True)
        return
    print_table(["CAPABILITY", "PREFIX", "GRANTED TO", "ON TENANT", "IMPLIED BY", "CALLABLE"],
                [[e.capability, _prefix(e.prefix), e.grant_role or "(superuser)", e.grant_tenant or "*",
                  e.implied_by or "", "yes" if e.callable else "NO"] for e in entries])


def _report(result: AccessGrant, as_json: bool) -> None:
    for notice in result.notices:
        click.echo(f"notice: {notice}", err=True)
    if as_json:
        print_json(result)
        return
    held = ", ".join(result.capabilities) if result.capabilities else "nothing left: the grant is gone"
    click.echo(f"{result.role_name} on {result.tenant_id}, {_prefix(result.prefix)}: {held}", err=True)


def _change_command(how: str, short_help: str, help: str) -> click.Command:
    @click.command(how, help=help, short_help=short_help)
    @click.argument("role")
    @click.argument("tenant")
    @click.option("--prefix", default="", metavar="PREFIX",
                  help="The names it applies to: those starting with PREFIX, literally (no wildcards). "
                       "Default: '' (the whole tenant).")
    @click.option("--capability", "-c", "capabilities", multiple=True, required=True,
                  type=click.Choice(CAPABILITIES), metavar="CAP",
                  help=f"A capability (repeat for several): {', '.join(CAPABILITIES)}.")
    @json_option
    @click.pass_context
    @fails_cleanly
    def command(ctx: click.Context, role: str, tenant: str, prefix: str, capabilities: tuple[str, ...],
                as_json: bool) -> None:
        with connect(ctx) as conn:
            tenants = Tenants(conn)
            change = tenants.grant if how == "grant" else tenants.revoke
            result = change(role, tenant, prefix=prefix, capabilities=capabilities)
        _report(result, as_json)
    return command


access.add_command(_change_command(
    "grant", "Add capabilities to ROLE's grant on a prefix of TENANT.",
    "Let ROLE use each --capability on TENANT's names that start with --prefix ('*' = every tenant); "
    "added to what that grant already holds. Refused (exit 6) for a capability whose functions ROLE "
    "cannot call (read without hush_reader, write without hush_writer...). Needs hush_admin."))
access.add_command(_change_command(
    "revoke", "Remove capabilities from ROLE's grant on a prefix of TENANT.",
    "Remove each --capability from ROLE's grant on exactly that TENANT and --prefix (the grant goes when "
    "none is left). Exit 3 when there is no such grant; a notice on stderr when a broader grant still "
    "allows a removed capability. Needs hush_admin."))
