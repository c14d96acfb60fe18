"""Certificates for `chatctl gen-certs`: a private CA, a server certificate and
client certificates, made and written to a folder (the command line around
them is chatctl/gencerts.py).

Certificate building follows trustme's structure (small typed helpers around
`cryptography`, ECDSA P-256, SHA-256), but keys are written 0600 whatever the
umask and every file is replaced atomically. Loading certificates into an
`ssl.SSLContext` is chatd/tls.py's job, not this module's.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import TypeAlias

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CertAndKey: TypeAlias = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]
Validity: TypeAlias = tuple[dt.datetime, dt.datetime]

DEFAULT_HOSTS: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
MAX_DAYS = 365  # sslyze's Mozilla-profile check allows leaf certificates up to 366 days
_CA_DAYS = 3650
_CLOCK_SKEW = dt.timedelta(hours=1)
_NICK = re.compile(r"[A-Za-z0-9_-]{1,32}")  # docs/protocol.md with the default max_nick_length
_DNS_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_KEY_MODE = 0o600
_CERT_MODE = 0o644


class CertError(Exception):
    """Bad input or unusable files, worded for the user of `chatctl gen-certs`."""


def _check_days(days: int) -> None:
    if not 1 <= days <= MAX_DAYS:
        raise CertError(f"--days must be 1..{MAX_DAYS} for server and client certificates (got {days})")


def _check_client_names(names: Sequence[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if not _NICK.fullmatch(name):
            raise CertError(f"--client {name!r}: must be a chat nickname, 1-32 of A-Z a-z 0-9 _ -")
        if name.lower() in seen:
            raise CertError(f"--client {name!r} is given twice (nicknames ignore case)")
        seen.add(name.lower())


def _check_spellings(out: Path, names: Sequence[str]) -> None:
    """Refuse a client name that differs only in case from one `out` already has a
    certificate for: nicknames ignore case, so chatd would take the two for one
    person (and, with tls.nick_from_cert, refuses the second spelling)."""
    if not out.is_dir():
        return
    existing = {path.name[len("client-") : -len(".crt")] for path in out.glob("client-*.crt")}
    by_key = {name.lower(): name for name in existing}
    for name in names:
        other = by_key.get(name.lower())
        if other is not None and other != name:
            raise CertError(
                f"--client {name!r}: {out / f'client-{other}.crt'} is already there for {other!r}, and "
                f"nicknames ignore case, so chatd would refuse a certificate for {name!r} as a second "
                f"spelling of {other!r}. For that person, use --client {other} (with --force to "
                "replace the files); for someone else, choose a name that differs in more than case"
            )


def _san(host: str) -> x509.GeneralName:
    """An IP SAN for an IP literal, an IDNA-encoded DNS SAN for anything else."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        pass  # not an IP literal: check it as a DNS name below
    else:
        if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
            raise CertError(f"--host {host!r}: leave out the scope (%{ip.scope_id})")
        return x509.IPAddress(ip)
    try:
        name = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        name = ""
    if not name or len(name) > 253 or not all(map(_DNS_LABEL.fullmatch, name.split("."))):
        raise CertError(f"--host {host!r}: not a valid DNS name or IP address")
    return x509.DNSName(name)


def _validity(days: int) -> Validity:
    # NOTE: notBefore lies in the past so that peers whose clocks lag accept the certificate.
    # notAfter counts from notBefore, so that the whole period is `days` long; the period
    # includes both ends (RFC 5280 4.1.2.5), hence the second taken off.
    not_before = dt.datetime.now(dt.UTC).replace(microsecond=0) - _CLOCK_SKEW
    return not_before, not_before + dt.timedelta(days=days, seconds=-1)


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _builder(
    common_name: str, issuer: x509.Name | None, key: ec.EllipticCurvePrivateKey, validity: Validity
) -> x509.CertificateBuilder:
    """Subject, serial, validity and SKI; `issuer` None means self-signed."""
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "chatd"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject if issuer is None else issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )


def issue_ca(common_name: str = "chatd development CA") -> CertAndKey:
    """A self-signed CA, valid for 10 years, that can sign leaf certificates only."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(common_name, None, key, _validity(_CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _issue_leaf(
    ca: CertAndKey,
    common_name: str,
    usage: x509.ObjectIdentifier,
    days: int,
    sans: Sequence[x509.GeneralName] = (),
) -> CertAndKey:
    ca_cert, ca_key = ca
    _check_days(days)
    validity = _validity(days)
    if validity[1] > ca_cert.not_valid_after_utc:
        raise CertError(
            f"the CA expires on {ca_cert.not_valid_after_utc:%Y-%m-%d}, before the new certificate "
            "would: use a smaller --days, or remove ca.crt and ca.key to create a new CA "
            "(clients then need the new ca.crt)"
        )
    try:
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    except x509.ExtensionNotFound:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        _builder(common_name, ca_cert.subject, key, validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(aki, critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def issue_server_cert(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    hosts: Sequence[str],
    days: int = 365,
) -> CertAndKey:
    """A serverAuth certificate for `hosts`: DNS names, IDNA-encoded, or IP literals."""
    if isinstance(hosts, str):
        raise TypeError(f"hosts must be a sequence of names, not the str {hosts!r}")
    if not hosts:
        raise CertError("the server certificate needs at least one --host")
    sans = list(dict.fromkeys(map(_san, hosts)))  # in order, without duplicates
    common_name = hosts[0] if len(hosts[0]) <= 64 else "chatd server"  # X.520 caps CN at 64
    usage = ExtendedKeyUsageOID.SERVER_AUTH
    return _issue_leaf((ca_cert, ca_key), common_name, usage, days, sans)


def issue_client_cert(
    ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, name: str, days: int = 365
) -> CertAndKey:
    """A clientAuth certificate whose common name is the nickname `name`."""
    _check_client_names([name])
    return _issue_leaf((ca_cert, ca_key), name, ExtendedKeyUsageOID.CLIENT_AUTH, days)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CertError(f"cannot read {path}: {exc.strerror or exc}") from exc


def load_ca(out: Path) -> CertAndKey | None:
    """The CA in `out` (ca.crt and ca.key), or None if neither file exists.

    Raises:
        CertError: only one of the files exists, or they are not an ECDSA CA
            certificate and its unencrypted key.
    """
    cert_path, key_path = out / "ca.crt", out / "ca.key"
    cert_exists, key_exists = os.path.lexists(cert_path), os.path.lexists(key_path)
    if not cert_exists and not key_exists:
        return None
    if cert_exists != key_exists:
        found, missing = (cert_path, key_path) if cert_exists else (key_path, cert_path)
        raise CertError(
            f"{found} exists but {missing} does not: restore {missing.name}, or remove "
            f"{found.name} to create a new CA (certificates signed by the old one stop working)"
        )
    hint = "restore the CA's files, or remove both to create a new CA"
    try:
        cert = x509.load_pem_x509_certificate(_read(cert_path))
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    except ValueError as exc:
        raise CertError(f"{cert_path}: not a PEM certificate ({exc}); {hint}") from exc
    if not is_ca:
        raise CertError(f"{cert_path}: not a CA certificate; {hint}")
    try:
        key = serialization.load_pem_private_key(_read(key_path), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:  # TypeError: key is encrypted
        raise CertError(f"{key_path}: not an unencrypted PEM private key ({exc}); {hint}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertError(f"{key_path}: not an ECDSA key as gen-certs makes; {hint}")
    if key.public_key() != cert.public_key():
        raise CertError(f"{key_path} is not the key of {cert_path}; {hint}")
    return cert, key


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write `data` to a new temporary file next to `path`, fsync it, and rename it over `path`."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    # NOTE: created 0600 and O_EXCL (which never follows a symlink planted at `tmp`), so a key
    # is not readable by others at any moment; fchmod then sets the exact mode despite the umask.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _KEY_MODE)
    replaced = False
    try:
        with open(fd, "wb") as file:
            os.fchmod(file.fileno(), mode)
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
        replaced = True
    finally:
        if not replaced:
            tmp.unlink(missing_ok=True)


def _write_files(out: Path, files: dict[Path, tuple[bytes, int]]) -> list[Path]:
    try:
        out.mkdir(mode=0o700, parents=True)
        os.chmod(out, 0o700)  # mkdir's mode is reduced by the umask
    except FileExistsError:
        pass  # an existing directory keeps its mode
    except OSError as exc:
        raise CertError(f"cannot create {out}: {exc.strerror or exc}") from exc
    path = out
    try:
        for path, (data, mode) in files.items():
            _write_atomic(path, data, mode)
        path = out
        dir_fd = os.open(out, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # makes the renames durable
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise CertError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return list(files)


def write_pki(
    out: Path,
    hosts: Sequence[str] | None = None,
    clients: Sequence[str] = (),
    days: int = 365,
    force: bool = False,
) -> list[Path]:
    """The whole of `chatctl gen-certs`: everything is checked before anything is written.

    Args:
        out: the directory, created with mode 0700 if missing. A CA in it is reused.
        hosts: subjectAltNames of server.crt. None means DEFAULT_HOSTS, except that an
            existing server.crt and server.key are kept when only `clients` are added.
        clients: nicknames; each gets client-NAME.crt and client-NAME.key. A name
            that differs only in case from an existing client-*.crt is refused.
        days: validity of server and client certificates, 1..365.
        force: replace existing server and client files. The CA is reused all the same.

    Returns:
        The paths written, each key before its certificate.

    Raises:
        CertError: bad input, an unusable CA, or a file that exists without `force`.
    """
    if isinstance(clients, str):
        raise TypeError(f"clients must be a sequence of nicknames, not the str {clients!r}")
    _check_days(days)
    _check_client_names(clients)
    if os.path.lexists(out) and not out.is_dir():
        raise CertError(f"--out {out}: exists and is not a directory")
    _check_spellings(out, clients)
    ca = load_ca(out)
    issued: dict[str, CertAndKey] = {}
    if ca is None:
        ca = issued["ca"] = issue_ca()
    server_files = (out / "server.crt", out / "server.key")
    if hosts is not None or not clients or not all(map(os.path.lexists, server_files)):
        issued["server"] = issue_server_cert(*ca, DEFAULT_HOSTS if hosts is None else hosts, days)
    for name in clients:
        issued[f"client-{name}"] = issue_client_cert(*ca, name, days)

    files: dict[Path, tuple[bytes, int]] = {}
    for stem, (cert, key) in issued.items():
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        files[out / f"{stem}.key"] = (key_pem, _KEY_MODE)
        files[out / f"{stem}.crt"] = (cert.public_bytes(serialization.Encoding.PEM), _CERT_MODE)
    existing = [str(path) for path in files if os.path.lexists(path)]
    if existing and not force:
        raise CertError(
            f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}: "
            "use --force to replace server and client files, or choose another --out"
        )
    return _write_files(out, files)
