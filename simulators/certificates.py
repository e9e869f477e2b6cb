"""Test PKI for mutual TLS: a CA, a server certificate for loopback, client certificates per thing.

What `openssl req -x509` did in feasibility.md section 5, with `cryptography`: a self-signed CA, a
server certificate with subjectAltName `DNS:localhost, IP:127.0.0.1` and extendedKeyUsage
serverAuth, and client certificates with CN = the thing name and clientAuth (Mosquitto's
`use_identity_as_username` turns that CN into the username its ACL sees). Keys are ECDSA P-256:
fast to generate, accepted by OpenSSL, Mosquitto, paho and awscrt. Only for tests and local
benches: the CA key sits next to the certificates, unencrypted.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from system.adapters.tls import TlsFiles
from system.errors import ConfigError

_VALIDITY = datetime.timedelta(days=365)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.write_bytes(pem)
    os.chmod(path, 0o600)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(subject: str, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


_LEAF_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=True,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)


@dataclass(frozen=True)
class TlsMaterial:
    """A CA and a loopback server certificate in `folder`; `client(name)` issues client pairs."""

    folder: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path

    @property
    def server_only(self) -> TlsFiles:
        """What a client without a certificate of its own has: the CA only."""
        return TlsFiles(self.ca_cert)

    def client(self, name: str) -> TlsFiles:
        """The certificate and key of client `name` (CN=name, clientAuth); issued on first use."""
        cert_path, key_path = self.folder / f"client-{name}.crt", self.folder / f"client-{name}.key"
        if not cert_path.exists():
            key = _new_key()
            certificate = self._issue(name, key.public_key(), ExtendedKeyUsageOID.CLIENT_AUTH, [])
            _write_key(key_path, key)
            cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return TlsFiles(self.ca_cert, cert_path, key_path)

    def _issue(
        self,
        subject: str,
        public_key: ec.EllipticCurvePublicKey,
        usage: x509.ObjectIdentifier,
        alt_names: list[x509.GeneralName],
    ) -> x509.Certificate:
        ca = x509.load_pem_x509_certificate(self.ca_cert.read_bytes())
        ca_key = serialization.load_pem_private_key(self.ca_key.read_bytes(), password=None)
        if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
            raise ConfigError(f"{self.ca_key} is not the ECDSA key create_tls_material writes")
        builder = (
            _builder(subject, ca.subject, public_key)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_LEAF_USAGE, critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        )
        if alt_names:
            builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        return builder.sign(ca_key, hashes.SHA256())


def create_tls_material(folder: Path, hosts: tuple[str, ...] = ("localhost", "127.0.0.1")) -> TlsMaterial:
    """Write a fresh CA (ca.crt/ca.key) and server pair (server.crt/server.key) for `hosts`."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key = _new_key()
    ca_name = _name("edgesim test CA")
    ca_cert = (
        _builder("edgesim test CA", ca_name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    material = TlsMaterial(folder, folder / "ca.crt", folder / "ca.key", folder / "server.crt", folder / "server.key")
    _write_key(material.ca_key, ca_key)
    material.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    server_key = _new_key()
    alt_names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt_names.append(x509.DNSName(host))
    server_cert = material._issue(hosts[0], server_key.public_key(), ExtendedKeyUsageOID.SERVER_AUTH, alt_names)
    _write_key(material.server_key, server_key)
    material.server_cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    return material


def issuer_certificate_for(certificate_pem: bytes, private_key_pem: bytes) -> bytes:
    """A CA certificate under which a moto-issued device certificate verifies, as PEM.

    moto's CreateKeysAndCertificate signs each certificate with the certificate's own key under the
    issuer name "Moto" and publishes no issuer, where AWS IoT signs with its CA. A TLS broker or a
    fake endpoint that fronts moto's IoT as IoT Core fronts AWS's needs that issuer to verify the
    device: this makes it from what the device bundle holds (same name, same key, CA:TRUE).
    """
    device = x509.load_pem_x509_certificate(certificate_pem)
    key = serialization.load_pem_private_key(private_key_pem, password=None)
    if device.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo):
        raise ConfigError("the private key does not belong to the certificate")
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise ConfigError(f"an issuer for a {type(key).__name__} key is not supported")
    now = datetime.datetime.now(datetime.UTC)
    issuer = (
        x509.CertificateBuilder()
        .subject_name(device.issuer)
        .issuer_name(device.issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    return issuer.public_bytes(serialization.Encoding.PEM)
