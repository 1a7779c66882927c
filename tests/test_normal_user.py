"""First contact as a normal user: a real non-root account, the real /dev/fuse (mode 0600 root),
real rclone. Without access, `mount-bucket --doctor`, `mount-bucket BUCKET` and the demo script
name /dev/fuse and the cause, and create nothing; with access granted by an ACL (taken back after),
the demo passes.

Needs root (to create the user and grant the ACL): skipped otherwise, with the reason."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest
from conftest import ACCESS_KEY, BUCKET, SECRET_KEY, S3Server, processes, signal_checked, write_rclone_config

USER = "vbnormal"
DEVICE = "/dev/fuse"
SYSTEM_PYTHON = "/usr/bin/python3"
CHECKOUT = Path(__file__).resolve().parent.parent


def _why_skip() -> str:
    if os.geteuid() != 0:
        return "needs root: creates the user vbnormal and grants it /dev/fuse with an ACL"
    if not os.path.exists(DEVICE):
        return "needs /dev/fuse: FUSE is not available on this machine"
    for tool in ("useradd", "runuser", "setfacl", "fusermount3"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            return f"needs {tool} (apt-get install passwd util-linux acl fuse3)"
    if not os.path.exists(SYSTEM_PYTHON):
        return f"needs {SYSTEM_PYTHON} for the user's venv"
    return ""


pytestmark = [pytest.mark.fuse, pytest.mark.skipif(bool(_why_skip()), reason=_why_skip() or "-")]


def _tool(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def _run(argv: list[str], timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, **kw)


@pytest.fixture(scope="module")
def user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        res = _run([_tool("useradd"), "--create-home", "--shell", "/bin/bash", USER])
        assert res.returncode == 0, res.stderr
        return pwd.getpwnam(USER)


@pytest.fixture(scope="module")
def user_venv() -> Path:
    """A venv of the system python with this checkout[rclone] installed (a copy), readable by
    every user: this test's python lives under /root, which the user cannot read. The SLURM
    tests' venv, built once per source tree."""
    from slurm_cluster import ensure_user_venv

    return ensure_user_venv(CHECKOUT)


def _user_can_open(user: pwd.struct_passwd) -> bool:
    res = _run([_tool("runuser"), "-u", user.pw_name, "--", SYSTEM_PYTHON, "-c",
                f"import os; os.close(os.open({DEVICE!r}, os.O_RDWR))"], timeout=30)
    return res.returncode == 0


@pytest.fixture
def fuse_closed(user):
    """/dev/fuse as a normal user finds it here: not open to them."""
    mode = stat.S_IMODE(os.stat(DEVICE).st_mode)
    if mode & 0o006 or _user_can_open(user):
        pytest.skip(f"{DEVICE} is open to {USER} right now (mode {mode:o}: another test "
                    "harness opened it); this test needs it closed")


@pytest.fixture
def grant_fuse(user):
    """Open /dev/fuse to the user with an ACL; taken back at teardown (other entries kept)."""
    def grant() -> None:
        res = _run([_tool("setfacl"), "-m", f"u:{user.pw_name}:rw", DEVICE], timeout=30)
        assert res.returncode == 0, res.stderr

    yield grant
    _run([_tool("setfacl"), "-x", f"u:{user.pw_name}", DEVICE], timeout=30)
    # and the mask entry when no one else's entry needs it (setfacl refuses while one does)
    _run([_tool("setfacl"), "-x", "m::", DEVICE], timeout=30)
    acl = _run(["getfacl", "-p", DEVICE], timeout=30).stdout
    assert f"user:{user.pw_name}:" not in acl


@pytest.fixture
def sandbox(user):
    """A directory owned by the user (HOME, runtime dir, rclone config); its mounts and the
    user's processes started in it are stopped at teardown."""
    top = Path(tempfile.mkdtemp(prefix="vbn-", dir="/tmp"))
    home = top / "home"
    home.mkdir()
    for path in (top, home):
        os.chown(path, user.pw_uid, user.pw_gid)
        path.chmod(0o755)
    yield top
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f]
    for mp in mounts:
        if mp.startswith(str(top)):
            _run(["fusermount3", "-uz", mp], timeout=30)
    for pid in processes(uid=user.pw_uid, words=str(top)):
        with contextlib.suppress(ProcessLookupError, AssertionError):  # gone meanwhile
            signal_checked(pid, signal.SIGKILL, str(top))
    shutil.rmtree(top, ignore_errors=True)


def as_user(user, argv: list[str], env: dict[str, str], cwd: Path,
            timeout: float = 120) -> subprocess.CompletedProcess:
    """`argv` as the user, with exactly `env` (no root's variables leak in)."""
    pairs = [f"{k}={v}" for k, v in env.items()]
    return _run([_tool("runuser"), "-u", user.pw_name, "--", "env", "-i", *pairs, *argv],
                timeout=timeout, cwd=str(cwd))


@pytest.fixture
def s3_for_user(sandbox, user):
    server = S3Server(Path(tempfile.mkdtemp(prefix="vbn-s3-", dir="/tmp")))
    server.make_bucket(BUCKET, {"hello.txt": b"hello\n"})
    try:
        server.start()
        config = sandbox / "rclone.conf"
        write_rclone_config(config, server.endpoint)
        os.chown(config, user.pw_uid, user.pw_gid)
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


def user_env(sandbox: Path, venv: Path) -> dict[str, str]:
    return {"HOME": str(sandbox / "home"), "USER": USER, "LOGNAME": USER,
            "PATH": f"{venv}/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
            "RCLONE_CONFIG": str(sandbox / "rclone.conf"),
            "VISIONLAB_BUCKETS_RUNTIME_DIR": str(sandbox / "rt"),
            "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}


def test_doctor_fails_the_fuse_line_naming_the_permission(user, user_venv, fuse_closed, sandbox,
                                                          s3_for_user):
    proc = as_user(user, ["mount-bucket", "--doctor"], user_env(sandbox, user_venv), sandbox)
    lines = proc.stdout.splitlines()
    fuse_line = [ln for ln in lines if ln.startswith(("ok    fuse:", "fail  fuse:"))]
    assert fuse_line == [ln for ln in lines if " fuse: " in ln] and len(fuse_line) == 1, proc.stdout
    assert fuse_line[0].startswith(f"fail  fuse: cannot open {DEVICE} read-write as {USER}: "
                                   "Permission denied (crw-"), fuse_line  # crw------- root:root
    for words in ("ask your admins", "'fuse' group", "compute node"):
        assert words in fuse_line[0]
    # the only failure: everything else on this machine is fine for the user
    assert [ln for ln in lines if ln.startswith("fail")] == fuse_line, proc.stdout
    assert proc.returncode == 1
    assert not (sandbox / "rt").exists()


def test_mount_names_dev_fuse_and_creates_nothing(user, user_venv, fuse_closed, sandbox,
                                                  s3_for_user):
    home = sandbox / "home"
    proc = as_user(user, ["mount-bucket", BUCKET], user_env(sandbox, user_venv), sandbox)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.startswith(f"error: cannot open {DEVICE} read-write as {USER}: "
                                  "Permission denied"), proc.stderr
    assert proc.stderr.count("\n") == 1
    assert not (sandbox / "rt").exists()  # no runtime dir, no mount dir, no log
    assert list(home.iterdir()) == []  # no ~/s3_buckets, no link
    assert processes(uid=user.pw_uid, words="rclone mount") == []


def _copy_clone(sandbox: Path, user) -> Path:
    """The files a clone has, in a directory the user owns (the demo makes .try-venv in it)."""
    clone = sandbox / "clone"
    ignore = shutil.ignore_patterns(".venv", ".try-venv", "__pycache__", "*.egg-info", ".git")
    shutil.copytree(CHECKOUT, clone, ignore=ignore, symlinks=True)
    for dirpath, dirs, files in os.walk(clone):
        for name in [dirpath, *(os.path.join(dirpath, n) for n in dirs + files)]:
            os.lchown(name, user.pw_uid, user.pw_gid)
    return clone


def test_demo_prints_the_cause_then_passes_once_granted(user, user_venv, fuse_closed, sandbox,
                                                        grant_fuse):
    clone = _copy_clone(sandbox, user)
    env = user_env(sandbox, user_venv)
    for var in ("RCLONE_CONFIG", "VISIONLAB_BUCKETS_RUNTIME_DIR", "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY"):
        del env[var]
    env["TMPDIR"] = str(sandbox)
    demo = ["bash", "scripts/try-without-aws.sh"]

    proc = as_user(user, demo, env, clone, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert f"cannot open {DEVICE} read-write as {USER}: Permission denied" in out
    assert processes(uid=user.pw_uid, words="serve s3") == []  # nothing left running

    grant_fuse()
    proc = as_user(user, demo, env, clone, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "try: done in" in out
    assert "README.txt" in out  # ls -R of the mounted sample bucket
    assert processes(uid=user.pw_uid, words="serve s3") == []
    assert processes(uid=user.pw_uid, words="rclone mount") == []
