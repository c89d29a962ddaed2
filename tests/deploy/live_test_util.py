"""What the deploy tests that start live processes share: free loopback ports, bounded waits, the processes
they start (stopped on every exit path) and a tiny IDX data set."""
import os
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, seconds, what):
    """condition()'s first true value, polled every 0.2 s; TimeoutError "WHAT within SECONDS s" after that."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise TimeoutError(f"{what} within {seconds} s")


def write_idx(folder, count):
    """COUNT synthetic 28x28 training images in Fashion-MNIST's IDX layout (write_idx.py)."""
    subprocess.run([sys.executable, os.path.join(HERE, "write_idx.py"), folder, str(count)], check=True, timeout=60)


class Processes:
    """Started processes, stopped (SIGTERM, then SIGKILL) when the block ends."""

    def __init__(self):
        self.started = []

    def start(self, argv, log):
        with open(log, "a") as out:
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        self.started.append(process)
        return process

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for process in reversed(self.started):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
