"""_build_backend.py — a dependency-free PEP 517 build backend for the etok Python package: it
writes the wheel (pure Python: etok/*.py + metadata) with zipfile, so `pip install python/`
needs neither setuptools nor wheel nor the network."""
import base64
import hashlib
import io
import os
import tarfile
import zipfile

NAME, VERSION = "etok", "0.1.0"
HERE = os.path.dirname(os.path.abspath(__file__))
TAG = "py3-none-any"


def _metadata():
    readme = open(os.path.join(HERE, "README.md")).read()
    return ("Metadata-Version: 2.1\nName: %s\nVersion: %s\nSummary: Energy of named windows inside a Python "
            "program, measured by etok's meters (ctypes over libetok)\nRequires-Python: >=3.8\n"
            "Provides-Extra: test\nRequires-Dist: pytest; extra == \"test\"\n"
            "Description-Content-Type: text/markdown\n\n%s" % (NAME, VERSION, readme))


def _files():
    pkg = os.path.join(HERE, NAME)
    for f in sorted(os.listdir(pkg)):
        if f.endswith(".py"):
            yield "%s/%s" % (NAME, f), open(os.path.join(pkg, f), "rb").read()


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def _digest(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    dist = "%s-%s.dist-info" % (NAME, VERSION)
    wheel_name = "%s-%s-%s.whl" % (NAME, VERSION, TAG)
    entries = list(_files())
    entries.append(("%s/METADATA" % dist, _metadata().encode()))
    entries.append(("%s/WHEEL" % dist, ("Wheel-Version: 1.0\nGenerator: etok _build_backend\nRoot-Is-Purelib: true\n"
                                        "Tag: %s\n" % TAG).encode()))
    record = "".join("%s,%s,%d\n" % (n, _digest(d), len(d)) for n, d in entries) + "%s/RECORD,,\n" % dist
    entries.append(("%s/RECORD" % dist, record.encode()))
    with zipfile.ZipFile(os.path.join(wheel_directory, wheel_name), "w", zipfile.ZIP_DEFLATED) as z:
        for n, d in entries:
            z.writestr(n, d)
    return wheel_name


def build_sdist(sdist_directory, config_settings=None):
    base = "%s-%s" % (NAME, VERSION)
    name = base + ".tar.gz"
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz") as t:
        for rel in ["pyproject.toml", "README.md", "_build_backend.py"] + [n for n, _ in _files()]:
            t.add(os.path.join(HERE, rel), arcname="%s/%s" % (base, rel))
        info = _metadata().encode()
        ti = tarfile.TarInfo("%s/PKG-INFO" % base)
        ti.size = len(info)
        t.addfile(ti, io.BytesIO(info))
    return name
