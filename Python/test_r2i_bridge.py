"""Tests of r2i_bridge.py on its own: the protocol spoken to a real worker process, the codecs,
and the error kinds. Run with: .venv/bin/python -m unittest discover -s Python (the README's
test command does)."""

import json
import os
import struct
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import r2i_bridge as bridge  # noqa: E402


class Worker:
    """A worker process spoken to as the Swift side does."""

    def __init__(self, *python_args):
        self.p = subprocess.Popen(
            [sys.executable, *python_args, os.path.join(HERE, "r2i_bridge.py"), "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def request(self, op, payload=b""):
        self.p.stdin.write(op + struct.pack("<I", len(payload)) + payload)
        self.p.stdin.flush()
        head = self.p.stdout.read(5)
        status, n = head[:1], struct.unpack("<I", head[1:])[0]
        return status, self.p.stdout.read(n)

    def make(self, name, seed=0):
        status, reply = self.request(b"M", json.dumps({"name": name, "seed": seed}).encode())
        return status, (json.loads(reply) if status == b"K" else reply)

    def reset(self, seed):
        return self.request(b"R", struct.pack("<BQ", 1, seed))

    def step_discrete(self, a):
        return self.request(b"S", struct.pack("<q", a))

    def close(self):
        status, _ = self.request(b"C")
        self.p.wait(timeout=10)
        self.errors = self.p.stderr.read()
        for f in (self.p.stdin, self.p.stdout, self.p.stderr):
            f.close()
        return status


class ProtocolTests(unittest.TestCase):
    def test_cartpole_spaces_reset_step_and_close(self):
        w = Worker()
        status, spaces = w.make("gym:CartPole-v1")
        self.assertEqual(status, b"K", spaces)
        self.assertEqual(spaces["action"], {"kind": "discrete", "n": 2})
        self.assertEqual(spaces["observation"]["kind"], "vector")
        self.assertEqual(len(spaces["observation"]["low"]), 4)
        self.assertEqual(spaces["observation"]["high"][1], 1e30)  # float32 max, sent as "infinite"
        self.assertEqual(spaces["maxEpisodeSteps"], 500)
        status, first = w.reset(7)
        self.assertEqual((status, len(first)), (b"K", 16))
        self.assertEqual(w.reset(7)[1], first)  # seeded
        status, reply = w.step_discrete(1)
        reward, terminated, truncated = struct.unpack("<dBB", reply[:10])
        self.assertEqual((status, reward, terminated, truncated, len(reply)), (b"K", 1.0, 0, 0, 26))
        self.assertEqual(w.close(), b"K")
        self.assertEqual(w.p.returncode, 0)

    def test_error_kinds(self):
        w = Worker()
        status, reply = w.make("nosuchfamily:x")
        self.assertEqual((status, reply[:1]), (b"E", b"C"))
        self.assertIn(b"unknown Python family", reply)
        status, reply = w.request(b"R", struct.pack("<BQ", 0, 0))
        self.assertEqual((status, reply[:1]), (b"E", b"C"))  # no environment yet
        self.assertEqual(w.make("fault:raise/2")[0], b"K")
        w.reset(0)
        status, reply = w.step_discrete(5)
        self.assertEqual((status, reply[:1]), (b"E", b"A"))
        self.assertIn(b"outside Discrete(2)", reply)
        self.assertEqual(w.step_discrete(1)[0], b"K")  # still usable; this was step 1
        status, reply = w.step_discrete(1)
        self.assertEqual((status, reply[:1]), (b"E", b"F"))
        self.assertIn(b"RuntimeError: deliberate failure at step 2", reply)
        w.close()

    def test_printing_goes_to_stderr(self):
        w = Worker()
        w.make("fault:print/0", seed=3)
        status, obs = w.reset(3)
        self.assertEqual((status, struct.unpack("<2f", obs)), (b"K", (0.0, 3.0)))
        status, reply = w.step_discrete(1)
        self.assertEqual(struct.unpack("<dBB2f", reply), (1.0, 0, 0, 1.0, 3.0))
        w.close()
        self.assertIn(b"a package talking on stdout", w.errors)

    def test_missing_packages_name_the_install_command(self):
        w = Worker("-S")  # no site-packages
        status, reply = w.make("gym:CartPole-v1")
        self.assertEqual((status, reply[:1]), (b"E", b"C"))
        self.assertIn(b"./Tools/dev.sh python", reply)
        self.assertIn(b"gymnasium==", reply)
        w.close()

    def test_the_worker_exits_when_its_input_closes(self):
        w = Worker()
        w.p.stdin.close()
        self.assertEqual(w.p.wait(timeout=10), 0)
        w.p.stdout.close()
        w.p.stderr.close()


class CodecTests(unittest.TestCase):
    def test_discrete_and_tuple_observations_become_one_hot_vectors(self):
        spaces = bridge.need("gymnasium.spaces")
        codec = bridge.observation_codec(spaces.Tuple((spaces.Discrete(3), spaces.MultiDiscrete([2, 2]))))
        self.assertEqual(codec.describe()["kind"], "vector")
        values = struct.unpack("<7f", codec.encode((2, [1, 0])))
        self.assertEqual(values, (0, 0, 1, 0, 1, 1, 0))

    def test_images_and_dicts_with_an_image(self):
        spaces = bridge.need("gymnasium.spaces")
        np = bridge.need("numpy")
        image = spaces.Box(0, 255, (4, 5, 3), np.uint8)
        self.assertEqual(bridge.observation_codec(image).describe(), {"kind": "image", "height": 4, "width": 5, "channels": 3})
        d = bridge.observation_codec(spaces.Dict({"image": image, "pos": spaces.Box(-1, 1, (2,))}))
        self.assertEqual(d.key, "image")
        self.assertEqual(len(d.encode(np.zeros((4, 5, 3), np.uint8))), 60)

    def test_box_actions_are_checked_and_shaped(self):
        spaces = bridge.need("gymnasium.spaces")
        codec = bridge.ActionCodec.gym(spaces.Box(-1, 1, (2, 1)))
        a = codec.decode(struct.pack("<2f", 0.5, -1.0))
        self.assertEqual(a.shape, (2, 1))
        with self.assertRaises(bridge.BridgeError) as e:
            codec.decode(struct.pack("<2f", 0.5, 1.5))
        self.assertEqual(e.exception.kind, "A")
        with self.assertRaises(bridge.BridgeError):
            codec.decode(struct.pack("<2f", float("nan"), 0))

    def test_discrete_with_a_start_is_shifted(self):
        spaces = bridge.need("gymnasium.spaces")
        codec = bridge.ActionCodec.gym(spaces.Discrete(3, start=-1))
        self.assertEqual(codec.describe(), {"kind": "discrete", "n": 3})
        self.assertEqual(codec.decode(struct.pack("<q", 0)), -1)


if __name__ == "__main__":
    unittest.main()
