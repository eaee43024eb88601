"""A PEP 517 backend that needs nothing but the standard library: it zips
qbert/ into a wheel, with libqbert.so inside when $QBERT_LIB or ../build
has one (the wheel is then tagged for this platform)."""
import base64
import hashlib
import os
import sysconfig
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
NAME, VERSION = "qbert", "0.1.0"
DIST_INFO = "%s-%s.dist-info" % (NAME, VERSION)


def _library():
    for path in (os.environ.get("QBERT_LIB"), os.path.join(HERE, "..", "build", "libqbert.so")):
        if path and os.path.exists(path):
            return os.path.realpath(path)
    return None


def _record_line(arcname, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return "%s,sha256=%s,%d" % (arcname, digest, len(data))


def get_requires_for_build_wheel(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    lib = _library()
    tag = "py3-none-" + (sysconfig.get_platform().replace("-", "_").replace(".", "_") if lib else "any")
    files = []
    for name in sorted(os.listdir(os.path.join(HERE, NAME))):
        if name.endswith(".py"):
            with open(os.path.join(HERE, NAME, name), "rb") as f:
                files.append((NAME + "/" + name, f.read()))
    if lib:
        with open(lib, "rb") as f:
            files.append((NAME + "/libqbert.so", f.read()))
    meta = "Metadata-Version: 2.1\nName: %s\nVersion: %s\nRequires-Python: >=3.9\nRequires-Dist: numpy\n" % (
        NAME, VERSION)
    wheel = "Wheel-Version: 1.0\nGenerator: _qbert_build\nRoot-Is-Purelib: %s\nTag: %s\n" % (
        "false" if lib else "true", tag)
    files += [(DIST_INFO + "/METADATA", meta.encode()), (DIST_INFO + "/WHEEL", wheel.encode())]
    record = [_record_line(n, d) for n, d in files] + [DIST_INFO + "/RECORD,,"]
    files.append((DIST_INFO + "/RECORD", ("\n".join(record) + "\n").encode()))
    filename = "%s-%s-%s.whl" % (NAME, VERSION, tag)
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w", zipfile.ZIP_DEFLATED) as z:
        for n, d in files:
            z.writestr(n, d)
    return filename
