"""etok — measure the energy of named windows inside a Python program with etok's meters.

A ctypes binding over libetok.so (the C API in include/etok/etok.h, documented in docs/API.md of
the etok repository). The rules are etok's: with no meters named, every available counter/power
meter is used; the ``estimate`` meter only when asked for or when no meter exists, and every figure
from it says ``source == "estimate"``. Every energy comes with its uncertainty, source and boundary.

    with etok.measure("decode", meters=["rapl", "nvml"]) as w:
        n = generate()
        w.tokens_out = n
    print(w.energy_j, w.joules_per_token, w.source)

    @etok.measure("step")              # decorator: each call measured, the last in f.last_window
    def step(): ...

    with etok.Session(meters=["estimate"]) as s:   # many windows, saved as a run record
        with s.window("prefill"): ...
        with s.window("decode") as w: ...; w.tokens_out = 32
        s.save("run.json")                          # etok report run.json
    rec = etok.load_record("run.json")             # plain dicts and lists (pandas-ready)
"""
import ctypes
import ctypes.util
import functools
import json
import math
import os
import subprocess

__all__ = ["Session", "Window", "measure", "load_record", "EtokError", "api_version", "version"]
__version__ = "0.1.0"
API_VERSION = 1  # the ETOK_API_VERSION this binding was written for


class EtokError(RuntimeError):
    """A libetok call failed; the message says why (from etok_meter_error)."""


class _Options(ctypes.Structure):
    _fields_ = [("meters", ctypes.c_char_p), ("rate_hz", ctypes.c_double), ("cpu_idle_w", ctypes.c_double),
                ("cpu_max_w", ctypes.c_double), ("extlog_path", ctypes.c_char_p)]


class _Reading(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char * 64), ("request_id", ctypes.c_char * 64),
                ("t_begin_s", ctypes.c_double), ("t_end_s", ctypes.c_double), ("duration_s", ctypes.c_double),
                ("has_energy", ctypes.c_int), ("energy_j", ctypes.c_double),
                ("energy_uncertainty_j", ctypes.c_double), ("mean_power_w", ctypes.c_double),
                ("source", ctypes.c_char * 16), ("boundary", ctypes.c_char * 16),
                ("tokens_in", ctypes.c_longlong), ("tokens_out", ctypes.c_longlong),
                ("joules_per_output_token", ctypes.c_double),
                ("joules_per_output_token_uncertainty", ctypes.c_double), ("final", ctypes.c_int)]


_lib = None


def _candidates():
    env = os.environ.get("ETOK_LIB")
    if env:
        yield env
        return
    yield "libetok.so.%d" % API_VERSION
    found = ctypes.util.find_library("etok")
    if found:
        yield found
    try:
        libdir = subprocess.run(["pkg-config", "--variable=libdir", "etok"], capture_output=True, text=True,
                                timeout=10).stdout.strip()
        if libdir:
            yield os.path.join(libdir, "libetok.so.%d" % API_VERSION)
    except (OSError, subprocess.SubprocessError):
        pass


def _load():
    global _lib
    if _lib is not None:
        return _lib
    errors = []
    for cand in _candidates():
        try:
            lib = ctypes.CDLL(cand)
            break
        except OSError as e:
            errors.append("%s: %s" % (cand, e))
    else:
        raise EtokError("libetok not found (%s); install etok (make install) or set ETOK_LIB to libetok.so"
                        % "; ".join(errors))
    P, I, D, LL, C = ctypes.c_void_p, ctypes.c_int, ctypes.c_double, ctypes.c_longlong, ctypes.c_char_p
    sig = {
        "etok_api_version": (I, []), "etok_version": (C, []),
        "etok_meter_open": (P, [ctypes.POINTER(_Options), ctypes.c_char_p, ctypes.c_size_t]),
        "etok_meter_begin": (I, [P, C]), "etok_meter_end": (I, [P, C, ctypes.POINTER(_Reading)]),
        "etok_meter_set_tokens": (I, [P, C, LL, LL]), "etok_meter_set_request_id": (I, [P, C, C]),
        "etok_meter_reading": (I, [P, C, ctypes.POINTER(_Reading)]),
        "etok_meter_source": (C, [P]), "etok_meter_boundary": (C, [P]),
        "etok_meter_save": (I, [P, C]), "etok_meter_error": (C, [P]), "etok_meter_close": (None, [P]),
    }
    for name, (res, args) in sig.items():
        f = getattr(lib, name)
        f.restype, f.argtypes = res, args
    if lib.etok_api_version() != API_VERSION:
        raise EtokError("libetok API version %d, this binding needs %d" % (lib.etok_api_version(), API_VERSION))
    _lib = lib
    return lib


def api_version():
    return _load().etok_api_version()


def version():
    return _load().etok_version().decode()


def _b(s):
    return s.encode() if isinstance(s, str) else s


class Window:
    """One measured window. Energy figures are filled when it ends; ``tokens_in``/``tokens_out``
    and ``request_id`` may be set inside the ``with`` block or after it (J/token follow)."""

    def __init__(self, session, name):
        self._session, self.name = session, name
        self.tokens_in = self.tokens_out = None
        self.request_id = None
        self.ended = False
        self.duration_s = self.energy_j = self.energy_uncertainty_j = self.mean_power_w = math.nan
        self.source = self.boundary = None
        self.has_energy = False
        self.final = False

    def _fill(self, r):
        self.duration_s = r.duration_s
        self.has_energy = bool(r.has_energy)
        self.energy_j, self.energy_uncertainty_j = r.energy_j, r.energy_uncertainty_j
        self.mean_power_w = r.mean_power_w
        self.source, self.boundary = r.source.decode(), r.boundary.decode()
        self.final = bool(r.final)
        self.ended = True

    def _push(self):
        s = self._session
        if s is None or s._m is None:
            return
        if self.tokens_in is not None or self.tokens_out is not None:
            s._check(s._lib.etok_meter_set_tokens(s._m, _b(self.name), int(self.tokens_in or 0),
                                                  int(self.tokens_out or 0)))
        if self.request_id is not None:
            s._check(s._lib.etok_meter_set_request_id(s._m, _b(self.name), _b(str(self.request_id))))

    @property
    def joules_per_output_token(self):
        return self.energy_j / self.tokens_out if self.tokens_out else math.nan

    @property
    def joules_per_output_token_uncertainty(self):
        return self.energy_uncertainty_j / self.tokens_out if self.tokens_out else math.nan

    @property
    def joules_per_token(self):
        """energy_j / (tokens_in + tokens_out), as docs/METRICS.md §3 defines it."""
        n = (self.tokens_in or 0) + (self.tokens_out or 0)
        return self.energy_j / n if n else math.nan

    def as_dict(self):
        keys = ["name", "request_id", "duration_s", "has_energy", "energy_j", "energy_uncertainty_j", "mean_power_w",
                "source", "boundary", "tokens_in", "tokens_out", "joules_per_output_token", "joules_per_token",
                "final"]
        return {k: getattr(self, k) for k in keys}

    def __repr__(self):
        return "<etok.Window %s: %.4g J ± %.2g J (%s, %s)>" % (self.name, self.energy_j, self.energy_uncertainty_j,
                                                               self.source, self.boundary)


class Session:
    """A measurement session: meters opened once, any number of named windows (nested or
    overlapping), saved as a run record that ``etok report`` reads."""

    def __init__(self, meters=None, rate_hz=0.0, cpu_tdp=None, extlog=None):
        self._lib = _load()
        if isinstance(meters, (list, tuple)):
            meters = ",".join(meters)
        o = _Options(_b(meters) if meters else None, float(rate_hz), 0.0, 0.0, _b(extlog) if extlog else None)
        if cpu_tdp is not None:
            o.cpu_idle_w, o.cpu_max_w = float(cpu_tdp[0]), float(cpu_tdp[1])
        err = ctypes.create_string_buffer(1024)
        self._m = self._lib.etok_meter_open(ctypes.byref(o), err, len(err))
        if not self._m:
            raise EtokError(err.value.decode(errors="replace"))
        self._windows = {}

    def _check(self, rc):
        if rc != 0:
            raise EtokError(self._lib.etok_meter_error(self._m).decode(errors="replace"))

    def _live(self):
        if self._m is None:
            raise EtokError("the session is closed")

    def begin(self, name):
        self._live()
        self._check(self._lib.etok_meter_begin(self._m, _b(name)))
        w = Window(self, name)
        self._windows[name] = w
        return w

    def end(self, name):
        self._live()
        w = self._windows.get(name) or Window(self, name)
        r = _Reading()
        self._check(self._lib.etok_meter_end(self._m, _b(name), ctypes.byref(r)))
        w._push()
        w._fill(r)
        return w

    def window(self, name):
        """Context manager: ``with session.window("decode") as w: ...``."""
        return _WindowCtx(self, name)

    def reading(self, name):
        """The window's figures again (final, from the complete record, after save())."""
        self._live()
        w = self._windows.get(name) or Window(self, name)
        w._push()
        r = _Reading()
        self._check(self._lib.etok_meter_reading(self._m, _b(name), ctypes.byref(r)))
        w._fill(r)
        return w

    @property
    def source(self):
        self._live()
        return self._lib.etok_meter_source(self._m).decode()

    @property
    def boundary(self):
        self._live()
        return self._lib.etok_meter_boundary(self._m).decode()

    def save(self, path):
        """Stop the meters and write the run record (every window must have ended)."""
        self._live()
        for w in self._windows.values():
            if w.ended:
                w._push()
        self._check(self._lib.etok_meter_save(self._m, _b(os.fspath(path))))
        for name, w in self._windows.items():
            if w.ended:
                self.reading(name)

    def close(self):
        if self._m is not None:
            self._lib.etok_meter_close(self._m)
            self._m = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class _WindowCtx:
    def __init__(self, session, name):
        self._s, self._name = session, name

    def __enter__(self):
        self._w = self._s.begin(self._name)
        return self._w

    def __exit__(self, *exc):
        self._s.end(self._name)
        return False


class measure:
    """``with etok.measure(name, meters=...) as w`` or ``@etok.measure(name, ...)``.

    Opens its own session (or uses ``session=``), measures one window, and closes the session it
    opened. ``save=PATH`` writes the run record. As a decorator each call is measured and the
    last window is ``f.last_window``."""

    def __init__(self, name="window", meters=None, session=None, save=None, **session_kw):
        self.name, self.meters, self.session, self.save, self.kw = name, meters, session, save, session_kw
        self._own = None

    def __enter__(self):
        s = self.session
        if s is None:
            s = self._own = Session(meters=self.meters, **self.kw)
        self._s = s
        self._w = s.begin(self.name)
        return self._w

    def __exit__(self, *exc):
        s, w = self._s, self._w
        try:
            s.end(self.name)
            if self.save:
                s.save(self.save)
        finally:
            if self._own is not None:
                self._own.close()
                self._own = None
        w._session = None if s._m is None else s
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*a, **k):
            m = measure(self.name, self.meters, self.session, self.save, **self.kw)
            with m as w:
                result = fn(*a, **k)
            wrapper.last_window = w
            return result

        wrapper.last_window = None
        return wrapper


def load_record(path):
    """A run record (etok run/bench/serve, or Session.save) as plain dicts and lists: the JSON
    as saved (docs/RECORD.md). ``pandas.DataFrame(rec["requests"])`` gives one row per window."""
    with open(os.fspath(path)) as f:
        return json.load(f)
