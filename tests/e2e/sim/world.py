"""The simulated world: tenants, users, organisations, feeds and app identities.

Plain data, fixed names and GUIDs, so that a failing scenario reads the same on every run.
Nothing here imports more than the standard library: the namespace runner needs HOSTNAMES
before anything else is importable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEVOPS_RESOURCE = "499b84ac-1321-427f-aa17-267ca6975798"
DEVOPS_SCOPE = f"{DEVOPS_RESOURCE}/.default"
# Azure DevOps' application id URI: Entra accepts it in place of the GUID.
DEVOPS_APP_URI = "https://app.vssps.visualstudio.com"
DEVOPS_AUDIENCES = frozenset(
    {
        DEVOPS_RESOURCE,
        f"api://{DEVOPS_RESOURCE}",
        DEVOPS_APP_URI,
        f"{DEVOPS_APP_URI}/",
    }
)
ARM_RESOURCE = "https://management.core.windows.net/"
GRAPH_RESOURCE = "00000003-0000-0000-c000-000000000000"
AZURE_CLI_CLIENT_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
# Visual Studio Code's Microsoft authentication provider (what ado-codespaces-auth signs in with).
VSCODE_CLIENT_ID = "aebc6443-996d-45c2-90f0-388ff96faa56"
# The Azure Artifacts Credential Provider's public client (device code sign-in).
ARTIFACTS_CREDPROVIDER_CLIENT_ID = "d5a56ea4-7369-46b8-a538-c370805301bf"
# Microsoft's own applications: preauthorized for Azure DevOps' user_impersonation, and unable
# to ask for any narrower permission of it (AADSTS65002: first party to first party needs
# preauthorization).
FIRST_PARTY_CLIENTS = frozenset(
    {AZURE_CLI_CLIENT_ID, VSCODE_CLIENT_ID, ARTIFACTS_CREDPROVIDER_CLIENT_ID}
)
# Azure DevOps' delegated permissions, as an app registration lists them.
USER_IMPERSONATION = "user_impersonation"
PACKAGING = "vso.packaging"
PACKAGING_WRITE = "vso.packaging_write"
FEDERATED_AUDIENCE = "api://AzureADTokenExchange"

# --- tenants ------------------------------------------------------------------------------

T_CONTOSO = "4092a4cd-fdc0-42b4-9015-7134a956de3e"
T_FABRIKAM = "cf478cca-be7c-4f03-a1b6-9aa7ed23ae69"


@dataclass(frozen=True)
class Tenant:
    id: str
    domain: str
    display_name: str
    # Verified custom domains: Entra accepts them wherever a tenant is named.
    custom_domains: tuple[str, ...] = ()


TENANTS: dict[str, Tenant] = {
    T_CONTOSO: Tenant(T_CONTOSO, "contoso.onmicrosoft.com", "Contoso", ("contoso.com",)),
    T_FABRIKAM: Tenant(T_FABRIKAM, "fabrikam.onmicrosoft.com", "Fabrikam", ("fabrikam.com",)),
}

# --- users --------------------------------------------------------------------------------

ALICE = "alice@contoso.com"
BOB = "bob@contoso.com"
CAROL = "carol@fabrikam.com"

ALICE_PASSWORD = "Alice-Passw0rd!sim"
BOB_PASSWORD = "Bob-Passw0rd!sim"
CAROL_PASSWORD = "Carol-Passw0rd!sim"

READER = "reader"
CONTRIBUTOR = "contributor"


@dataclass(frozen=True)
class User:
    upn: str
    tenant: str
    oid: str
    password: str
    display_name: str
    # Feed rights per organisation; a user with no entry for an org is not a member of it.
    rights: dict[str, str] = field(default_factory=dict)


USERS: dict[str, User] = {
    ALICE: User(
        ALICE,
        T_CONTOSO,
        "8d14a277-7d2e-46ed-a5e5-993090887583",
        ALICE_PASSWORD,
        "Alice Smith",
        {"contoso": CONTRIBUTOR},
    ),
    BOB: User(
        BOB,
        T_CONTOSO,
        "82ecdef2-85ff-4521-a9b0-a9d3fdd53e89",
        BOB_PASSWORD,
        "Bob Jones",
        {"contoso": READER},
    ),
    CAROL: User(
        CAROL,
        T_FABRIKAM,
        "5e6030ce-f6d6-4bb3-83e1-6f6cc69d48df",
        CAROL_PASSWORD,
        "Carol Diaz",
        {"fabrikam": CONTRIBUTOR},
    ),
}

# --- organisations and feeds --------------------------------------------------------------

ORG_CONTOSO = "contoso"
ORG_FABRIKAM = "fabrikam"
# Azure DevOps Server (on-premises): a collection on a host of its own, PATs only.
ONPREM_HOST = "ads.example.com"
ORG_ONPREM = "DefaultCollection"


@dataclass(frozen=True)
class Org:
    name: str
    tenant: str | None  # None: on-premises, no Entra tenant
    guid: str


ORGS: dict[str, Org] = {
    ORG_CONTOSO: Org(ORG_CONTOSO, T_CONTOSO, "39a28ca9-4b5e-4d82-9ab3-f3b4ccccec84"),
    ORG_FABRIKAM: Org(ORG_FABRIKAM, T_FABRIKAM, "8ba8dac7-b568-4015-9b40-56407c1feaa3"),
    ORG_ONPREM.lower(): Org(ORG_ONPREM, None, "14dd43ec-e114-4843-aeca-cefa64a314f4"),
}


@dataclass(frozen=True)
class Feed:
    org: str
    project: str | None
    name: str
    guid: str
    views: tuple[str, ...] = ("Local",)


FEED_SHARED_GUID = "02ecaf74-bccc-4229-b54c-e44335ce4351"
FEED_TEAM_GUID = "27822499-8a55-4619-b687-f945cfb89c8a"
FEED_RELEASES_GUID = "0297a498-3e74-4bf0-810f-7575416c8eb2"
FEED_ONPREM_GUID = "1ddbfb4d-feec-44f0-bdfd-b37e295cac36"

FEEDS: tuple[Feed, ...] = (
    Feed(ORG_CONTOSO, None, "shared", FEED_SHARED_GUID, ("Local", "Release")),
    Feed(ORG_CONTOSO, "Project1", "team", FEED_TEAM_GUID),
    Feed(ORG_FABRIKAM, None, "releases", FEED_RELEASES_GUID),
    Feed(ORG_ONPREM, "Project1", "onprem", FEED_ONPREM_GUID),
)

# Ready-made URLs for the scenarios.
SHARED_INDEX = "https://pkgs.dev.azure.com/contoso/_packaging/shared/pypi/simple/"
SHARED_RELEASE_INDEX = "https://pkgs.dev.azure.com/contoso/_packaging/shared@Release/pypi/simple/"
SHARED_UPLOAD = "https://pkgs.dev.azure.com/contoso/_packaging/shared/pypi/upload/"
TEAM_INDEX = "https://pkgs.dev.azure.com/contoso/Project1/_packaging/team/pypi/simple/"
TEAM_UPLOAD = "https://pkgs.dev.azure.com/contoso/Project1/_packaging/team/pypi/upload/"
RELEASES_INDEX = "https://pkgs.dev.azure.com/fabrikam/_packaging/releases/pypi/simple/"
LEGACY_SHARED_INDEX = "https://contoso.pkgs.visualstudio.com/_packaging/shared/pypi/simple/"
ONPREM_INDEX = f"https://{ONPREM_HOST}/tfs/{ORG_ONPREM}/Project1/_packaging/onprem/pypi/simple/"
PLAIN_INDEX = "https://plain-index.example/simple/"

# --- app identities -----------------------------------------------------------------------

SECRET = "secret"
CERTIFICATE = "certificate"
FEDERATED = "federated"
MI_SYSTEM = "mi-system"
MI_USER = "mi-user"

OIDC_ISSUER_HOST = "vstoken.dev.azure.com"
# GitHub Actions' OIDC provider: the issuer (keys, metadata) and the runner-facing token service
# that ACTIONS_ID_TOKEN_REQUEST_URL points at.
GITHUB_ISSUER_HOST = "token.actions.githubusercontent.com"
GITHUB_ISSUER = f"https://{GITHUB_ISSUER_HOST}"
GITHUB_TOKEN_HOST = "pipelinesghubeus2.actions.githubusercontent.com"


@dataclass(frozen=True)
class AppIdentity:
    name: str
    kind: str
    tenant: str
    client_id: str
    object_id: str
    secret: str | None = None
    # Federated credential registered on the app; the audience is always FEDERATED_AUDIENCE.
    federated_issuer: str | None = None
    federated_subject: str | None = None
    # Default rights per organisation.
    rights: dict[str, str] = field(default_factory=dict)


def oidc_issuer(org: str) -> str:
    """Azure Pipelines' OIDC issuer for an organisation (workload identity federation)."""
    return f"https://{OIDC_ISSUER_HOST}/{ORGS[org.lower()].guid}"


SP_CONTOSO_SECRET = "a17ce92e-0ec0-4f7b-b68b-da04c9b6ab54"
SP_CONTOSO_CERT = "faa83f54-04ee-4b97-a1f7-a6dd9c369a4f"
SP_CONTOSO_FEDERATED = "92ed0a55-f3e8-451d-b635-e789682e68c1"
SP_CONTOSO_GITHUB = "3c2f7a1e-6d4b-4e8a-9b0c-5f1d2e3a4b6c"
SP_FABRIKAM_SECRET = "f137aa14-4421-46b1-b352-7623911b22e6"
SP_FABRIKAM_CERT = "ff729bbf-4b66-472c-b0ca-cb98e6c69fb3"
SP_FABRIKAM_FEDERATED = "e471a9b1-4b23-4190-b012-721fda09dbc2"
MI_SYSTEM_CLIENT_ID = "190eb5ab-cfb4-45db-8522-daa9af924640"
MI_USER_CLIENT_ID = "110dbc86-a0e6-48a3-97c9-20447106f466"

SP_CONTOSO_SECRET_VALUE = "Sim~ContosoSecret.8Qv2Kx_4Lr7Tn9Wd"
SP_FABRIKAM_SECRET_VALUE = "Sim~FabrikamSecret.3Hg6Pz_1Ms5Yc8Ub"

FEDERATED_SUBJECT_CONTOSO = "sc://contoso/Project1/contoso-federated"
FEDERATED_SUBJECT_FABRIKAM = "sc://fabrikam/Releases/fabrikam-federated"
GITHUB_SUBJECT_CONTOSO = "repo:contoso/app:ref:refs/heads/main"

APP_IDENTITIES: dict[str, AppIdentity] = {
    a.client_id: a
    for a in (
        AppIdentity(
            "contoso-secret",
            SECRET,
            T_CONTOSO,
            SP_CONTOSO_SECRET,
            "f26b46bb-db28-467b-9fac-2d02fc1c4d57",
            secret=SP_CONTOSO_SECRET_VALUE,
            rights={ORG_CONTOSO: CONTRIBUTOR},
        ),
        AppIdentity(
            "contoso-cert",
            CERTIFICATE,
            T_CONTOSO,
            SP_CONTOSO_CERT,
            "1ceb8914-0627-45f5-bbfb-861f5f026eb1",
            rights={ORG_CONTOSO: READER},
        ),
        AppIdentity(
            "contoso-federated",
            FEDERATED,
            T_CONTOSO,
            SP_CONTOSO_FEDERATED,
            "56e591cd-88e9-43d0-82bf-e3871b099c18",
            federated_issuer=oidc_issuer(ORG_CONTOSO),
            federated_subject=FEDERATED_SUBJECT_CONTOSO,
            rights={ORG_CONTOSO: CONTRIBUTOR},
        ),
        AppIdentity(
            "contoso-github",
            FEDERATED,
            T_CONTOSO,
            SP_CONTOSO_GITHUB,
            "d0b8e5c4-2a7f-4f3e-8c61-9e4a7b2d1f05",
            federated_issuer=GITHUB_ISSUER,
            federated_subject=GITHUB_SUBJECT_CONTOSO,
            rights={ORG_CONTOSO: CONTRIBUTOR},
        ),
        AppIdentity(
            "fabrikam-secret",
            SECRET,
            T_FABRIKAM,
            SP_FABRIKAM_SECRET,
            "160bd24e-2fa3-4a6d-b493-09f46bf51fb8",
            secret=SP_FABRIKAM_SECRET_VALUE,
            rights={ORG_FABRIKAM: CONTRIBUTOR},
        ),
        AppIdentity(
            "fabrikam-cert",
            CERTIFICATE,
            T_FABRIKAM,
            SP_FABRIKAM_CERT,
            "e284cff8-8029-4d4b-a3e6-886e29ccac61",
            rights={ORG_FABRIKAM: READER},
        ),
        AppIdentity(
            "fabrikam-federated",
            FEDERATED,
            T_FABRIKAM,
            SP_FABRIKAM_FEDERATED,
            "47ad81ff-5f47-4d9d-b68b-ae21c57484a8",
            federated_issuer=oidc_issuer(ORG_FABRIKAM),
            federated_subject=FEDERATED_SUBJECT_FABRIKAM,
            rights={ORG_FABRIKAM: CONTRIBUTOR},
        ),
        AppIdentity(
            "vm-system-identity",
            MI_SYSTEM,
            T_CONTOSO,
            MI_SYSTEM_CLIENT_ID,
            "35e02b0f-858a-424d-9a03-39eea098c4c0",
            rights={ORG_CONTOSO: READER},
        ),
        AppIdentity(
            "vm-user-identity",
            MI_USER,
            T_CONTOSO,
            MI_USER_CLIENT_ID,
            "9b8349a2-c514-4ea2-be89-2772dcd3ea2a",
            rights={ORG_CONTOSO: READER},
        ),
    )
}

# --- public client applications an organisation registers ---------------------------------


@dataclass(frozen=True)
class PublicClient:
    """An app registration of a tenant (single tenant, public client, loopback redirect URIs)
    with delegated Azure DevOps permissions an administrator consented to for everyone."""

    name: str
    tenant: str
    client_id: str
    devops_permissions: frozenset[str]


# Contoso's own sign-in applications for least privilege: packaging reads only, and reads
# plus uploads. Neither has user_impersonation.
CONTOSO_PACKAGING_CLIENT_ID = "6c1e2f0a-8b3d-4e57-9a61-2f4c8d7e5b13"
CONTOSO_PUBLISHING_CLIENT_ID = "b9d47a35-1e6c-4f28-8d03-7a5e9c2b41f6"

PUBLIC_CLIENTS: dict[str, PublicClient] = {
    c.client_id: c
    for c in (
        PublicClient(
            "Contoso packages (read)",
            T_CONTOSO,
            CONTOSO_PACKAGING_CLIENT_ID,
            frozenset({PACKAGING}),
        ),
        PublicClient(
            "Contoso packages (publish)",
            T_CONTOSO,
            CONTOSO_PUBLISHING_CLIENT_ID,
            frozenset({PACKAGING, PACKAGING_WRITE}),
        ),
    )
}

# --- hosts --------------------------------------------------------------------------------

LOGIN_HOSTS = ("login.microsoftonline.com", "login.windows.net", "login.microsoft.com")
FEED_HOST = "pkgs.dev.azure.com"
VSSPS_HOST = "vssps.dev.azure.com"
APP_VSSPS_HOST = "app.vssps.visualstudio.com"
# Where the Basic realm and X-TFS-FedAuthIssuer point: a scale unit, never contacted.
SCALE_UNIT_HOST = "pkgsprodsu3.pkgs.visualstudio.com"
PLAIN_INDEX_HOST = "plain-index.example"
# Azure Resource Manager: the real `az login` lists tenants and subscriptions there.
ARM_HOST = "management.azure.com"
IMDS_ADDRESS = "169.254.169.254"

# Names that must never get a credential: each is logged and answered 404.
ATTACKER_HOSTS = (
    "evil.example.com",
    "login.evil.example",
    "login.microsoftonline.com.evil.example",
    "login.windows.net.evil.example",
    "vssps.dev.azure.com.evil.example",
    "pkgs.dev.azure.com.evil.example",
    "dev.azure.com.evil.example",
    "evilpkgs.visualstudio.com",
    "evilvssps.visualstudio.com",
    "evil-login.microsoftonline.com",
    "attacker.vssps.visualstudio.com.evil.example",
    "attacker.vssps.visualstudio.com",  # a token service, of an organisation not ours
)
# Public hosts a misconfigured client might reach: inside the namespace they answer 404 and
# the log shows whether a credential went there.
BYSTANDER_HOSTS = ("pypi.org", "files.pythonhosted.org")


def legacy_feed_host(org: str) -> str:
    return f"{org}.pkgs.visualstudio.com"


def legacy_vssps_host(org: str) -> str:
    return f"{org}.vssps.visualstudio.com"


CLOUD_ORGS = (ORG_CONTOSO, ORG_FABRIKAM)

HOSTNAMES: tuple[str, ...] = (
    FEED_HOST,
    VSSPS_HOST,
    APP_VSSPS_HOST,
    "dev.azure.com",
    *(legacy_feed_host(o) for o in CLOUD_ORGS),
    *(legacy_vssps_host(o) for o in CLOUD_ORGS),
    SCALE_UNIT_HOST,
    *LOGIN_HOSTS,
    OIDC_ISSUER_HOST,
    GITHUB_ISSUER_HOST,
    GITHUB_TOKEN_HOST,
    ARM_HOST,
    ONPREM_HOST,
    PLAIN_INDEX_HOST,
    *ATTACKER_HOSTS,
    *BYSTANDER_HOSTS,
)

# Certificate names: the concrete ones above plus the wildcards the real services hold.
CERT_NAMES: tuple[str, ...] = (
    *HOSTNAMES,
    "*.pkgs.visualstudio.com",
    "*.vssps.visualstudio.com",
    "*.dev.azure.com",
    "*.actions.githubusercontent.com",
    "localhost",
    "127.0.0.1",
    "::1",
)


def tenant_of_name(name: str) -> Tenant | None:
    """Resolve a tenant named by GUID, initial domain or verified custom domain."""
    key = name.strip().lower()
    for tenant in TENANTS.values():
        if key in (tenant.id, tenant.domain, *tenant.custom_domains):
            return tenant
    return None


def org_named(name: str) -> Org | None:
    return ORGS.get(name.lower())
