"""``puyu-lab hub``: a whole class on one server — JupyterHub, one system account per learner, caps, one gradebook.

The engines are the field's: **JupyterHub** (from the registry) with **configurable-http-proxy** (npm) in front,
JupyterHub's own **LocalProcessSpawner** (or jupyterhub-systemdspawner's **SystemdSpawner** where systemd runs),
its built-in **PAMAuthenticator**, **bubblewrap** for each kernel's private network, and the kernel's **cgroups**
for the caps. What is written here is the glue none of them provides: the roster of system accounts with the homes
a class needs (:mod:`.accounts`), the cgroup a learner's server runs in where systemd does not
(:mod:`.cgroups`, :mod:`.spawner`), the config that ties them together (:mod:`.config`), the teacher's collection of
bundles into ``puyu-lab grade`` (:mod:`.classwork`) and the capacity measurement (:mod:`.capacity`).

Authenticator: **PAM** (JupyterHub's default ``PAMAuthenticator``), not NativeAuthenticator. Each learner needs a
system account anyway — Unix permissions are what keep A out of B's home, and the spawner runs B's server as B —
so the system's own password database is the one place a password can live: ``roster`` sets a random password
per account with ``chpasswd`` and prints it once; only its hash is kept (``/etc/shadow``), the learner can change
it with ``passwd`` in a terminal, and the teacher resets one with ``roster --reset-passwords``. NativeAuthenticator
would keep a second password store in the hub's database, beside accounts that exist regardless, and its sign-up
flow adds nothing when the teacher hands out the accounts. (On Kubernetes, where there are no system accounts,
``hub/values.yaml`` uses NativeAuthenticator.)

Mechanisms, per learner:

- **their own account, home and workspace**: home ``2710`` (group: the class's teachers), workspace
  ``~/workspace`` (``PUYU_LAB_HOME``), the labs copied to ``~/labs`` on first login;
- **caps** (``hub start --mem 4G --cpus 1``): where systemd runs, SystemdSpawner's unit (``MemoryMax``,
  ``CPUQuota``); elsewhere a cgroup (v2, or v1 as on this machine) the server joins before it starts. Either way the
  kernels and everything they start — the deploy lab's llama.cpp server — are inside it;
- **a private network for each kernel and terminal**: bubblewrap (``--unshare-net``); the kernel talks to its
  JupyterLab over unix sockets in the learner's private runtime folder (``KernelManager.transport=ipc``), so
  neither it nor a server it starts has a port another account can reach;
- **shared, read-only**: the venv (packages, corpora, JupyterLab with the chain sidebar) and the puyu_lab package
  (the course model) are one root-owned copy; ``hub start`` refuses to start if a learner could write any of it;
- **the hub's secrets** (its database, cookie secret, the proxy's token) in ``<state>/private`` (root, 0700).
"""
