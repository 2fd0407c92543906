"""The Python side of r2i's environment bridge: one worker process per environment.

The Swift side (Modules/Envs/PythonBridge.swift) starts `python r2i_bridge.py --worker` with
pipes for stdin and stdout, sends one request at a time and reads one reply. Everything is
little-endian and framed by its length:

    request: u8 opcode, u32 payload length, payload
    reply:   u8 status ('K' ok, 'E' error), u32 payload length, payload

    'M' make    payload: JSON {"name": ..., "seed": ...}      reply: JSON spaces (see `describe`)
    'R' reset   payload: u8 has_seed, u64 seed                reply: observation
    'S' step    payload: the action (i64 per entry for discrete and multi-discrete spaces,
                f32 per entry for boxes)                      reply: f64 reward,
                                                               u8 terminated, u8 truncated,
                                                               observation
    'G' render  payload: empty                                reply: u32 height, u32 width,
                                                               u32 channels, u8 pixels (0 0 0
                                                               when the environment cannot draw)
    'C' close   payload: empty                                reply: empty; the worker exits

An observation is f32 values for vector observations and u8 pixels (height x width x channels,
rows top to bottom) for images. An error reply carries a u8 kind ('C' configuration: a name, a
missing package; 'A' an action outside the space; 'F' the environment raised) and a UTF-8
message; the worker stays usable after 'C' and 'A'.

Environment names, by family:
    gym:<id>                    any Gymnasium id (Atari ids too, once ale-py is installed)
    dmc:<domain>_<task>         DeepMind Control, proprioceptive vector, action repeat 2
    dmc-vision:<domain>_<task>  the same with 64x64 RGB frames as the observation
    atari:<Game>                ALE, 64x64 RGB, action repeat 4 (max over the last two frames),
                                no sticky actions, up to 30 no-ops at reset, minimal action set
    real-memorymaze:<N>x<N>     the memory-maze package, 64x64 RGB, 6 discrete actions
    real-popgym:<Game><Level>   the popgym package, its observation flattened
    real-bsuite:memory_len/<L>, real-bsuite:discounting_chain/<mapping seed>

The worker writes replies to a private copy of stdout and points stdout at stderr, so that a
package printing on import cannot corrupt the protocol. It ignores Ctrl-C (the parent stops it
by closing its stdin) and exits when the parent dies.
"""

import json
import os
import signal
import struct
import sys
import threading
import time

PINNED = {
    "gymnasium": "gymnasium==1.2.2",
    "ale_py": "ale-py==0.12.1",
    "dm_control": "dm-control==1.0.50 mujoco==3.17.0",
    "memory_maze": "memory-maze==1.0.3 dm-control==1.0.50 mujoco==3.17.0",
    "popgym": "popgym==1.0.7",
    "bsuite": "bsuite==0.3.6",
    "PIL": "pillow",
    "numpy": "numpy",
}


class BridgeError(Exception):
    """A problem the Swift side reports to the user as it is: kind 'C' for a configuration
    problem (a name, a missing package), 'A' for an action outside the space."""

    def __init__(self, message, kind="C"):
        super().__init__(message)
        self.kind = kind


def invalid_action(message):
    return BridgeError(message, kind="A")


def need(module):
    """Imports `module`, or raises naming the package to install and the command that does it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        top = module.split(".")[0]
        package = PINNED.get(top, top)
        raise BridgeError(
            f"the Python package for '{top}' is missing in {sys.executable} ({e}); "
            f"install it with ./Tools/dev.sh python (or: {sys.executable} -m pip install {package})"
        )


# ---------------------------------------------------------------------------------------------
# Spaces: what the Swift side sees.


class VectorCodec:
    """Observations flattened into f32 vectors (one-hot for discrete parts)."""

    def __init__(self, space=None, size=None, low=None, high=None):
        np = need("numpy")
        self.space = space
        if space is not None:
            spaces = need("gymnasium.spaces")
            flat = spaces.flatten_space(space)
            low, high = flat.low, flat.high
        self.low = np.asarray(low, dtype=np.float32).reshape(-1)
        self.high = np.asarray(high, dtype=np.float32).reshape(-1)

    def describe(self):
        return {"kind": "vector", "low": [json_float(v) for v in self.low], "high": [json_float(v) for v in self.high]}

    def encode(self, obs):
        np = need("numpy")
        if self.space is not None:
            obs = need("gymnasium.spaces").flatten(self.space, obs)
        v = np.asarray(obs, dtype=np.float32).reshape(-1)
        if v.size != self.low.size:
            raise BridgeError(f"observation has {v.size} values, the space {self.low.size}", kind="F")
        return v.astype("<f4").tobytes()


class ImageCodec:
    """8-bit height x width x channels images."""

    def __init__(self, height, width, channels):
        self.shape = (height, width, channels)

    def describe(self):
        h, w, c = self.shape
        return {"kind": "image", "height": h, "width": w, "channels": c}

    def encode(self, obs):
        np = need("numpy")
        a = np.asarray(obs)
        if a.shape != self.shape:
            raise BridgeError(f"image observation has shape {a.shape}, expected {self.shape}", kind="F")
        return np.ascontiguousarray(a, dtype=np.uint8).tobytes()


def json_float(v):
    """JSON has no infinity: bounds beyond 1e30 are sent as +-1e30 and read back as infinite."""
    v = float(v)
    if v != v:
        raise BridgeError("a space bound is NaN")
    return max(min(v, 1e30), -1e30)


def is_image(space):
    np = need("numpy")
    return (
        type(space).__name__ == "Box"
        and len(space.shape) == 3
        and space.dtype == np.uint8
        and space.shape[2] in (1, 3, 4)
    )


def observation_codec(space):
    """The codec for a Gymnasium observation space: images stay images; a Dict with an 'image'
    entry uses that entry alone; everything else is flattened into a vector."""
    if is_image(space):
        return ImageCodec(*space.shape)
    if type(space).__name__ == "Dict" and "image" in space.spaces and is_image(space["image"]):
        codec = ImageCodec(*space["image"].shape)
        codec.key = "image"
        return codec
    return VectorCodec(space)


class ActionCodec:
    """Decodes the Swift side's action bytes and checks them against the space."""

    def __init__(self, kind, n=None, counts=None, low=None, high=None, start=0, shape=None):
        self.kind, self.n, self.counts, self.start = kind, n, counts, start
        self.low, self.high, self.shape = low, high, shape

    @staticmethod
    def gym(space):
        np = need("numpy")
        name = type(space).__name__
        if name == "Discrete":
            return ActionCodec("discrete", n=int(space.n), start=int(space.start))
        if name == "MultiDiscrete":
            if np.any(space.start != 0) if hasattr(space, "start") else False:
                raise BridgeError("multi-discrete actions with a non-zero start are not supported")
            return ActionCodec("multiDiscrete", counts=[int(c) for c in np.asarray(space.nvec).reshape(-1)])
        if name == "Box":
            low = np.asarray(space.low, dtype=np.float32).reshape(-1)
            high = np.asarray(space.high, dtype=np.float32).reshape(-1)
            return ActionCodec("box", low=low, high=high, shape=space.shape)
        raise BridgeError(f"the action space {space} is not supported (Discrete, MultiDiscrete, Box)")

    def describe(self):
        if self.kind == "discrete":
            return {"kind": "discrete", "n": self.n}
        if self.kind == "multiDiscrete":
            return {"kind": "multiDiscrete", "counts": self.counts}
        return {"kind": "box", "low": [json_float(v) for v in self.low], "high": [json_float(v) for v in self.high]}

    def decode(self, payload):
        np = need("numpy")
        if self.kind == "discrete":
            if len(payload) != 8:
                raise invalid_action(f"a discrete action is 8 bytes, got {len(payload)}")
            (a,) = struct.unpack("<q", payload)
            if not 0 <= a < self.n:
                raise invalid_action(f"action {a} is outside Discrete({self.n})")
            return a + self.start
        if self.kind == "multiDiscrete":
            if len(payload) != 8 * len(self.counts):
                raise invalid_action(f"a multi-discrete action is {8 * len(self.counts)} bytes, got {len(payload)}")
            a = np.frombuffer(payload, dtype="<i8")
            for i, (v, c) in enumerate(zip(a, self.counts)):
                if not 0 <= v < c:
                    raise invalid_action(f"entry {i} of the action is {v}, outside 0...{c - 1}")
            return a.astype(np.int64)
        if len(payload) != 4 * self.low.size:
            raise invalid_action(f"a box action is {4 * self.low.size} bytes, got {len(payload)}")
        a = np.frombuffer(payload, dtype="<f4").astype(np.float32)
        bad = ~((a >= self.low) & (a <= self.high))
        if bad.any():
            i = int(np.argmax(bad))
            raise invalid_action(f"entry {i} of the action is {a[i]}, outside [{self.low[i]}, {self.high[i]}]")
        return a.reshape(self.shape) if self.shape else a


# ---------------------------------------------------------------------------------------------
# Environments: each has reset(seed) -> obs, step(action) -> (obs, reward, terminated,
# truncated), render() -> HxWx3 uint8 or None, and the fields observation, action,
# max_episode_steps.


def seed31(seed):
    """Seeds for packages that take 31-bit ones (ALE, NumPy's legacy generator)."""
    return None if seed is None else int(seed) % (2**31 - 1)


class GymEnv:
    def __init__(self, env_id, seed, **kwargs):
        gym = need("gymnasium")
        if env_id.startswith("ALE/"):
            gym.register_envs(need("ale_py"))
        try:
            self.env = gym.make(env_id, **kwargs)
        except gym.error.Error as e:
            raise BridgeError(f"Gymnasium cannot make '{env_id}': {e}")
        self.observation = observation_codec(self.env.observation_space)
        self.action = ActionCodec.gym(self.env.action_space)
        spec = self.env.spec
        self.max_episode_steps = spec.max_episode_steps if spec is not None else None
        self.seed = seed

    def reset(self, seed):
        obs, _ = self.env.reset(seed=seed31(seed))
        return self.pick(obs)

    def pick(self, obs):
        key = getattr(self.observation, "key", None)
        return obs[key] if key else obs

    def step(self, action):
        obs, reward, terminated, truncated, _ = self.env.step(action)
        return self.pick(obs), float(reward), bool(terminated), bool(truncated)

    def render(self):
        try:
            frame = self.env.render()
        except Exception:
            return None
        return frame


class DMCEnv:
    """DeepMind Control as DreamerV3 sets it up: action repeat 2, 1000 control steps per episode
    (500 agent steps), 64x64 frames from camera 0 (quadruped: camera 2)."""

    repeat = 2
    size = 64

    def __init__(self, task, seed, vision):
        suite = need("dm_control.suite")
        np = need("numpy")
        domain, _, name = task.partition("_")
        if domain == "ball":  # ball_in_cup_catch
            domain, name = "ball_in_cup", task[len("ball_in_cup_") :]
        if (domain, name) not in suite.ALL_TASKS:
            known = ", ".join(f"{d}_{t}" for d, t in suite.ALL_TASKS)
            raise BridgeError(f"DeepMind Control has no task '{task}'; known: {known}")
        self.env = suite.load(domain, name, task_kwargs={"random": seed31(seed)})
        self.camera = 2 if domain == "quadruped" else 0
        self.vision = vision
        spec = self.env.action_spec()
        self.action = ActionCodec(
            "box", low=np.asarray(spec.minimum, np.float32).reshape(-1), high=np.asarray(spec.maximum, np.float32).reshape(-1)
        )
        if vision:
            self.observation = ImageCodec(self.size, self.size, 3)
        else:
            n = sum(int(np.prod(s.shape)) for s in self.env.observation_spec().values())
            self.observation = VectorCodec(size=n, low=[-np.inf] * n, high=[np.inf] * n)
        self.max_episode_steps = 1000 // self.repeat

    def observe(self, timestep):
        np = need("numpy")
        if self.vision:
            return self.render()
        return np.concatenate([np.asarray(v, np.float32).reshape(-1) for v in timestep.observation.values()])

    def reset(self, seed):
        if seed is not None:
            self.env.task.random.seed(seed31(seed))
        return self.observe(self.env.reset())

    def step(self, action):
        reward = 0.0
        for _ in range(self.repeat):
            ts = self.env.step(action)
            reward += ts.reward or 0.0
            if ts.last():
                break
        terminated = ts.last() and ts.discount == 0
        return self.observe(ts), reward, bool(terminated), bool(ts.last() and not terminated)

    def render(self):
        return self.env.physics.render(self.size, self.size, camera_id=self.camera)


class AtariEnv:
    """ALE with the reference's Atari100k settings."""

    repeat = 4
    noops = 30
    size = 64

    def __init__(self, game, seed):
        gym = need("gymnasium")
        gym.register_envs(need("ale_py"))
        need("PIL.Image")
        try:
            self.env = gym.make(
                f"ALE/{game}-v5", frameskip=1, repeat_action_probability=0.0, full_action_space=False, obs_type="rgb"
            )
        except gym.error.Error as e:
            raise BridgeError(f"ALE has no game '{game}' ({e}); names are as in ALE/<Game>-v5, e.g. atari:Pong")
        self.ale = self.env.unwrapped.ale
        self.action = ActionCodec.gym(self.env.action_space)
        self.observation = ImageCodec(self.size, self.size, 3)
        self.max_episode_steps = 108000 // self.repeat

    def frame(self, a, b=None):
        np = need("numpy")
        Image = need("PIL.Image")
        if b is not None:
            a = np.maximum(a, b)
        return np.asarray(Image.fromarray(a).resize((self.size, self.size), Image.BOX))

    def reset(self, seed):
        obs, _ = self.env.reset(seed=seed31(seed))
        for _ in range(int(self.env.unwrapped.np_random.integers(0, self.noops + 1))):
            obs, _, terminated, truncated, _ = self.env.step(0)
            if terminated or truncated:
                obs, _ = self.env.reset()
        return self.frame(obs)

    def step(self, action):
        reward, frames = 0.0, []
        terminated = truncated = False
        for _ in range(self.repeat):
            obs, r, terminated, truncated, _ = self.env.step(action)
            reward += r
            frames = (frames + [obs])[-2:]
            if terminated or truncated:
                break
        return self.frame(*frames), reward, bool(terminated), bool(truncated)

    def render(self):
        return self.ale.getScreenRGB()


class MemoryMazeEnv:
    """The memory-maze package's task, rebuilt on each seeded reset (its maze generator is seeded
    only when it is built)."""

    def __init__(self, size, seed):
        tasks = submodule("memory_maze", "tasks")
        builders = {9: tasks.memory_maze_9x9, 11: tasks.memory_maze_11x11, 13: tasks.memory_maze_13x13, 15: tasks.memory_maze_15x15}
        if size not in builders:
            raise BridgeError(f"Memory Maze comes in 9x9, 11x11, 13x13 and 15x15, not {size}x{size}")
        self.build = lambda s: builders[size](seed=s, image_only_obs=True)
        self.env = self.build(seed31(seed))
        self.observation = ImageCodec(64, 64, 3)
        self.action = ActionCodec("discrete", n=int(self.env.action_spec().num_values))
        self.max_episode_steps = {9: 1000, 11: 2000, 13: 3000, 15: 4000}[size]

    def reset(self, seed):
        if seed is not None:
            self.env = self.build(seed31(seed))
        self.last = self.env.reset().observation
        return self.last

    def step(self, action):
        ts = self.env.step(action)
        terminated = ts.last() and ts.discount == 0
        self.last = ts.observation
        return ts.observation, float(ts.reward or 0.0), bool(terminated), bool(ts.last() and not terminated)

    def render(self):
        return getattr(self, "last", None)


def submodule(package, module):
    """`package.module`, imported without running the package's __init__: bsuite's loads every
    experiment and through them scikit-image, pandas and plotnine; memory_maze's needs the old
    `gym` package to register gym ids. Neither is needed for the environments themselves."""
    import importlib.util
    import types

    if package not in sys.modules:
        spec = importlib.util.find_spec(package)
        if spec is None:
            need(package)  # raises naming the package to install
        stub = types.ModuleType(package)
        stub.__path__ = list(spec.submodule_search_locations)
        sys.modules[package] = stub
    return need(f"{package}.{module}")


class BSuiteEnv:
    """BSuite's memory_len and discounting_chain, reseeded on each seeded reset."""

    def __init__(self, setting, seed):
        np = need("numpy")
        kind, _, value = setting.partition("/")
        if not value.isdigit():
            raise BridgeError(f"real-bsuite names are memory_len/<L> or discounting_chain/<mapping seed>, not {setting}")
        if kind == "memory_len":
            mod = submodule("bsuite", "environments.memory_chain")
            self.env = mod.MemoryChain(memory_length=int(value), num_bits=1, seed=seed31(seed))
            self.max_episode_steps = int(value) + 1
        elif kind == "discounting_chain":
            mod = submodule("bsuite", "environments.discounting_chain")
            self.env = mod.DiscountingChain(mapping_seed=int(value))
            self.max_episode_steps = 100
        else:
            raise BridgeError(f"real-bsuite has memory_len/<L> and discounting_chain/<mapping seed>, not {setting}")
        self.kind = kind
        n = int(np.prod(self.env.observation_spec().shape))
        self.observation = VectorCodec(size=n, low=[-np.inf] * n, high=[np.inf] * n)
        self.action = ActionCodec("discrete", n=int(self.env.action_spec().num_values))

    def reset(self, seed):
        np = need("numpy")
        if seed is not None and self.kind == "memory_len":
            self.env._rng = np.random.RandomState(seed31(seed))
        return self.env.reset().observation

    def step(self, action):
        ts = self.env.step(int(action))
        terminated = ts.last() and ts.discount == 0
        return ts.observation, float(ts.reward or 0.0), bool(terminated), bool(ts.last() and not terminated)

    def render(self):
        return None


class FaultEnv:
    """For the bridge's own tests (family 'fault'): steps count up, episodes last 10 steps, and
    the env misbehaves on purpose at step n of the worker's life: fault:crash/<n> exits the
    process, fault:hang/<n> stops answering, fault:raise/<n> raises; fault:print/0 prints to
    stdout on every call (the protocol must not see it)."""

    def __init__(self, spec, seed):
        np = need("numpy")
        self.mode, _, n = spec.partition("/")
        if self.mode not in ("crash", "hang", "raise", "print") or not n.isdigit():
            raise BridgeError(f"fault names are fault:<crash|hang|raise|print>/<step>, not fault:{spec}")
        self.at, self.steps, self.t, self.seed = int(n), 0, 0, seed or 0
        self.observation = VectorCodec(size=2, low=[0, 0], high=[np.inf, np.inf])
        self.action = ActionCodec("discrete", n=2)
        self.max_episode_steps = 10

    def obs(self):
        return [float(self.t), float(self.seed % 7)]

    def reset(self, seed):
        if self.mode == "print":
            print("a package talking on stdout")
        self.t = 0
        if seed is not None:
            self.seed = seed
        return self.obs()

    def step(self, action):
        self.steps += 1
        self.t += 1
        if self.mode == "print":
            print("a package talking on stdout")
        if self.steps == self.at:
            print(f"fault: {self.mode} at step {self.steps}", file=sys.stderr, flush=True)
            if self.mode == "crash":
                os._exit(3)
            if self.mode == "hang":
                time.sleep(3600)
            if self.mode == "raise":
                raise RuntimeError(f"deliberate failure at step {self.steps}")
        return self.obs(), float(action), False, self.t >= 10

    def render(self):
        return None


def make(name, seed):
    family, sep, rest = name.partition(":")
    if not sep or not rest:
        raise BridgeError(f"a Python environment name is <family>:<name>, e.g. gym:CartPole-v1, not '{name}'")
    if family == "gym":
        return GymEnv(rest, seed)
    if family in ("dmc", "dmc-vision"):
        return DMCEnv(rest, seed, vision=family == "dmc-vision")
    if family == "atari":
        return AtariEnv(rest, seed)
    if family == "real-memorymaze":
        dims = rest.split("x")
        if len(dims) != 2 or dims[0] != dims[1] or not dims[0].isdigit():
            raise BridgeError(f"real-memorymaze names are <N>x<N>, e.g. real-memorymaze:9x9, not {rest}")
        return MemoryMazeEnv(int(dims[0]), seed)
    if family == "real-popgym":
        need("popgym")
        return GymEnv(f"popgym-{rest}-v0", seed)
    if family == "real-bsuite":
        return BSuiteEnv(rest, seed)
    if family == "fault":
        return FaultEnv(rest, seed)
    raise BridgeError(
        f"unknown Python family '{family}'; families: gym, dmc, dmc-vision, atari, real-memorymaze, real-popgym, real-bsuite"
    )


# ---------------------------------------------------------------------------------------------
# The worker loop.


class Worker:
    def __init__(self):
        self.env = None

    def handle(self, op, payload):
        """One request; returns the reply payload or raises BridgeError."""
        if op == b"M":
            request = json.loads(payload.decode())
            self.env = make(request["name"], request.get("seed"))
            env = self.env
            return json.dumps(
                {
                    "observation": env.observation.describe(),
                    "action": env.action.describe(),
                    "maxEpisodeSteps": env.max_episode_steps,
                }
            ).encode()
        if op == b"C":
            return b""
        if self.env is None:
            raise BridgeError("no environment yet: the first request must be 'make'")
        if op == b"R":
            has_seed, seed = struct.unpack("<BQ", payload)
            return self.env.observation.encode(self.env.reset(seed if has_seed else None))
        if op == b"S":
            action = self.env.action.decode(payload)
            obs, reward, terminated, truncated = self.env.step(action)
            head = struct.pack("<dBB", float(reward), int(terminated), int(truncated))
            return head + self.env.observation.encode(obs)
        if op == b"G":
            frame = self.env.render()
            if frame is None:
                return struct.pack("<III", 0, 0, 0)
            np = need("numpy")
            f = np.ascontiguousarray(frame, dtype=np.uint8)
            if f.ndim != 3:
                return struct.pack("<III", 0, 0, 0)
            return struct.pack("<III", *f.shape) + f.tobytes()
        raise BridgeError(f"unknown request {op!r}")


def read_exactly(stream, n):
    data = b""
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def watch_parent():
    """Exits when the parent process goes away (its pipes may be inherited and stay open)."""
    parent = os.getppid()
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(0)


def serve(inp, out):
    worker = Worker()
    while True:
        head = read_exactly(inp, 5)
        if head is None:
            return
        op, length = head[:1], struct.unpack("<I", head[1:])[0]
        payload = read_exactly(inp, length)
        if payload is None:
            return
        try:
            reply, status = worker.handle(op, payload), b"K"
        except BridgeError as e:
            reply, status = e.kind.encode() + str(e).encode(), b"E"
        except Exception as e:  # an environment's own failure: report it, with its type
            import traceback

            traceback.print_exc(file=sys.stderr)
            reply, status = b"F" + f"{type(e).__name__}: {e}".encode(), b"E"
        out.write(status + struct.pack("<I", len(reply)) + reply)
        out.flush()
        if op == b"C":
            return


def random_action(codec, rng):
    np = need("numpy")
    if codec.kind == "discrete":
        return int(rng.integers(codec.n)) + codec.start
    if codec.kind == "multiDiscrete":
        return np.array([rng.integers(c) for c in codec.counts], dtype=np.int64)
    low = np.where(np.isfinite(codec.low), codec.low, -1)
    high = np.where(np.isfinite(codec.high), codec.high, 1)
    a = rng.uniform(low, high).astype(np.float32)
    return a.reshape(codec.shape) if codec.shape else a


def bench(name, seconds):
    """Steps per second of `name` stepped here with uniformly random actions and no bridge, as
    `r2i-bench python-envs` compares it with the same environment stepped through the bridge."""
    np = need("numpy")
    env = make(name, 0)
    rng = np.random.default_rng(0)
    env.reset(0)
    steps, episodes, start = 0, 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        _, _, terminated, truncated = env.step(random_action(env.action, rng))
        steps += 1
        if terminated or truncated:
            episodes += 1
            env.reset(None)
    elapsed = time.perf_counter() - start
    print(json.dumps({"name": name, "steps": steps, "seconds": elapsed, "steps_per_second": steps / elapsed}))


def main():
    if sys.argv[1:2] == ["--bench"] and len(sys.argv) == 4:
        os.environ.setdefault("MUJOCO_GL", "osmesa")
        os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
        out = os.fdopen(os.dup(1), "w")
        os.dup2(2, 1)
        sys.stdout = out
        bench(sys.argv[2], float(sys.argv[3]))
        out.flush()
        os._exit(0)  # MuJoCo's renderer complains when torn down at exit
    if sys.argv[1:] != ["--worker"]:
        print(__doc__)
        print("This file is started by r2i (--worker); --bench <name> <seconds> times an environment alone.")
        return 2
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.setdefault("MUJOCO_GL", "osmesa")
    os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
    inp = os.fdopen(os.dup(0), "rb", buffering=0)
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed from now on goes to stderr
    threading.Thread(target=watch_parent, daemon=True).start()
    serve(inp, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
