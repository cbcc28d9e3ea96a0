#!/usr/bin/env python3
"""The Python side of `make bench-kafka` (benches/kafka_vs_python.sh).

What a team would run instead of mmnet: a confluent-kafka consumer that scores JSON telemetry
with numpy, using the *same* weights (the model's weights.safetensors and manifest.json), and
publishes one JSON score record per input, with the same at-least-once discipline as mmnet
(offsets stored only after the batch's scores are acknowledged).

Modes:
  consume  the baseline operator (runs until SIGTERM)
  measure  reads an output topic until N records: records/s (first to last arrival) and
           latency percentiles (arrival time - the input's timestamp, which both operators
           copy onto their score records)
  check    recomputes scores for records on an mmnet score topic from their input messages
           and reports the largest difference (mmnet and numpy must agree to 1e-4)
"""

import argparse
import json
import signal
import sys
import time

import numpy as np
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from safetensors.numpy import load_file

GROUP_TIMEOUTS = {
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 1000,
    "max.poll.interval.ms": 60000,
    # Tansu holds a fetch for fetch.wait.max.ms even when data is there (see the .sh).
    "fetch.wait.max.ms": 10,
}


class Model:
    """MMNet scoring in numpy, as mmnet_core's scorer: the model's scaling (min-max after the
    log compression of skewed columns), encoder, attention, and for the scores that need it
    (mse, calibrated, combined: the default) shrinkage, read-out and decoder."""

    def __init__(self, model_dir):
        with open(f"{model_dir}/manifest.json") as f:
            m = json.load(f)
        w = load_file(f"{model_dir}/weights.safetensors")
        self.features = m["features"]
        lo = np.asarray(m["scaler"]["min"], np.float32)
        hi = np.asarray(m["scaler"]["max"], np.float32)
        self.lo = lo
        with np.errstate(divide="ignore"):
            self.scale = np.where(hi > lo, 1.0 / (hi - lo), 0.0).astype(np.float32)
        lc = m["scaler"].get("log_compress") or []
        self.lc_idx = np.asarray([j for j, c in enumerate(lc) if c], dtype=np.int64)
        self.lc_origin = np.asarray([lc[j]["origin"] for j in self.lc_idx], np.float32)
        self.lc_scale = np.asarray([lc[j]["scale"] for j in self.lc_idx], np.float32)
        # PyTorch layout (out x in): y = x W^T.
        self.enc1 = np.ascontiguousarray(w["encoder.0.weight"].T)
        self.enc2 = np.ascontiguousarray(w["encoder.2.weight"].T)
        self.mem = np.ascontiguousarray(w["memory"].T)
        self.mem_read = np.ascontiguousarray(w["memory"])
        self.dec1 = np.ascontiguousarray(w["decoder.0.weight"].T)
        self.dec2 = np.ascontiguousarray(w["decoder.2.weight"].T)
        mp = m["model"]
        self.k = mp["memory_normal"]
        self.guard = np.float32(mp["log_guard"])
        self.gamma = np.float32(mp["shrink_threshold"])
        self.eps = np.float32(mp["shrink_eps"])
        self.variant = m["score"]["variant"]
        self.lam = np.float32(m["score"]["lambda"])
        self.cal = m["score"].get("calibration")
        self.threshold = m["threshold"]["value"]
        known = ("paper", "s_sum", "s_kl", "mse", "calibrated", "combined")
        if self.variant not in known:
            sys.exit(f"baseline implements {', '.join(known)}; the model uses {self.variant}")

    def z(self, name, v):
        c = self.cal[name]
        return (v - np.float32(c["median"])) / np.float32(c["iqr"])

    def score(self, x):
        x = np.array(x, dtype=np.float32)
        if len(self.lc_idx):
            d = (x[:, self.lc_idx] - self.lc_origin) / self.lc_scale
            x[:, self.lc_idx] = np.sign(d) * np.log1p(np.abs(d))
        x = (x - self.lo) * self.scale
        h = np.maximum(x @ self.enc1, 0.0)
        a = (h @ self.enc2) @ self.mem
        a -= a.max(axis=1, keepdims=True)
        np.exp(a, out=a)
        a /= a.sum(axis=1, keepdims=True)
        s_sum = a[:, : self.k].sum(axis=1)
        s_kl = -np.log(a + self.guard).mean(axis=1) - np.float32(np.log(a.shape[1]))
        if self.variant == "paper":
            return -(s_sum + self.lam * s_kl), s_sum, s_kl
        if self.variant == "s_sum":
            return -s_sum, s_sum, s_kl
        if self.variant == "s_kl":
            return -s_kl, s_sum, s_kl
        u = a - self.gamma
        shrunk = np.where(u > 0, u * a / (u + self.eps), 0.0).astype(np.float32)
        w_hat = shrunk / np.maximum(shrunk.sum(axis=1, keepdims=True), np.float32(1e-12))
        x_hat = np.maximum((w_hat @ self.mem_read) @ self.dec1, 0.0) @ self.dec2
        mse = ((x - x_hat) ** 2).mean(axis=1)
        if self.variant == "mse":
            return mse, s_sum, s_kl
        ln_mse = np.log(mse + np.float32(1e-12))
        if self.variant == "calibrated":
            return self.z("neg_s_sum", -s_sum) + self.z("log_mse", ln_mse), s_sum, s_kl
        # Both masses summed directly, as mmnet does (1 - S_sum loses them to rounding).
        # The model's recorded guard (1e-7 in models from before it was recorded).
        floor = np.float32(self.cal.get("logit_guard", 1e-7))
        m_l = a[:, self.k :].sum(axis=1)
        logit = np.log(np.maximum(m_l, floor)) - np.log(np.maximum(s_sum, floor))
        score = (self.z("logit_anomaly_mass", logit) + self.z("log_mse", ln_mse)
                 + np.maximum(self.z("neg_s_kl", -s_kl), 0.0))
        return score, s_sum, s_kl


def consume(a):
    model = Model(a.model)
    c = Consumer(
        {
            "bootstrap.servers": a.brokers,
            "group.id": a.group,
            "auto.offset.reset": "earliest",
            "enable.auto.offset.store": False,
            **GROUP_TIMEOUTS,
        }
    )
    p = Producer({"bootstrap.servers": a.brokers, "linger.ms": 5, "enable.idempotence": True})
    running = True

    def stop(*_):
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    c.subscribe([a.input])
    feats = model.features
    while running:
        msgs = c.consume(num_messages=a.batch, timeout=0.02)
        if not msgs:
            continue
        good = [m for m in msgs if m.error() is None]
        rows = []
        for m in good:
            d = json.loads(m.value())
            rows.append([d[f] for f in feats])
        score, s_sum, s_kl = model.score(np.asarray(rows, dtype=np.float32))
        for i, m in enumerate(good):
            rec = {
                "source": {"topic": m.topic(), "partition": m.partition(), "offset": m.offset()},
                "key": m.key().decode() if m.key() else None,
                "timestamp": m.timestamp()[1],
                "mmnet_score": float(score[i]),
                "s_sum": float(s_sum[i]),
                "s_kl": float(s_kl[i]),
                "is_anomaly": bool(score[i] > model.threshold),
                "model": {"name": "python-baseline", "digest": ""},
            }
            while True:
                try:
                    p.produce(a.output, json.dumps(rec).encode(), key=m.key(), timestamp=m.timestamp()[1])
                    break
                except BufferError:
                    p.poll(0.005)
            p.poll(0)
        p.flush()
        last = {}
        for m in good:
            last[(m.topic(), m.partition())] = m.offset()
        c.store_offsets(offsets=[TopicPartition(t, part, o + 1) for (t, part), o in last.items()])
    c.close()


def measure(a):
    c = Consumer({"bootstrap.servers": a.brokers, "group.id": f"measure-{time.time()}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "fetch.wait.max.ms": a.fetch_wait_ms})
    md = c.list_topics(a.topic, timeout=10)
    parts = [TopicPartition(a.topic, p, 0) for p in md.topics[a.topic].partitions]
    c.assign(parts)
    lat = []
    first = last = None
    n = n_first = 0
    deadline = time.time() + a.timeout
    # Kept cheap (one clock read per consume call): the reader shares the CPU with the
    # operator it measures.
    while n < a.n and time.time() < deadline:
        if a.per_message:
            # consume() waits for num_messages or its timeout, whichever comes first; at a
            # fixed rate that wait would be counted as latency. poll() returns each message
            # as soon as it is there.
            m = c.poll(0.1)
            msgs = [m] if m is not None else []
        else:
            msgs = c.consume(num_messages=10000, timeout=0.1)
        if not msgs:
            continue
        now = time.time()
        good = [m for m in msgs if m.error() is None]
        if first is None:
            first, n_first = now, len(good)
        last = now
        now_ms = now * 1000.0
        n += len(good)
        lat.extend(now_ms - m.timestamp()[1] for m in good)
    c.close()
    out = {"records": n, "complete": n >= a.n}
    if n > 1:
        out["seconds"] = last - first
        # Records that arrived after the first consume call, over the time since it.
        out["records_per_s"] = (n - n_first) / max(last - first, 1e-9)
        lat = np.asarray(lat[int(len(lat) * a.warmup):])
        out["p50_ms"] = float(np.percentile(lat, 50))
        out["p99_ms"] = float(np.percentile(lat, 99))
    print(json.dumps(out))


def check(a):
    model = Model(a.model)

    def read(topic, n):
        c = Consumer({"bootstrap.servers": a.brokers, "group.id": f"check-{time.time()}",
                      "auto.offset.reset": "earliest", "enable.auto.commit": False})
        md = c.list_topics(topic, timeout=10)
        c.assign([TopicPartition(topic, p, 0) for p in md.topics[topic].partitions])
        got = []
        deadline = time.time() + 60
        while len(got) < n and time.time() < deadline:
            got += [m for m in c.consume(num_messages=5000, timeout=0.2) if m.error() is None]
        c.close()
        return got

    scores = [json.loads(m.value()) for m in read(a.scores, a.n)][: a.n]
    inputs = {(m.partition(), m.offset()): json.loads(m.value()) for m in read(a.input, a.total)}
    x = np.asarray([[inputs[(s["source"]["partition"], s["source"]["offset"])][f]
                     for f in model.features] for s in scores], dtype=np.float32)
    ours, _, _ = model.score(x)
    theirs = np.asarray([s["mmnet_score"] for s in scores], dtype=np.float32)
    diff = float(np.abs(ours - theirs).max())
    print(json.dumps({"compared": len(scores), "max_abs_diff": diff, "ok": diff <= 1e-4}))
    if diff > 1e-4:
        sys.exit(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    c = sub.add_parser("consume")
    c.add_argument("--model", required=True)
    c.add_argument("--brokers", required=True)
    c.add_argument("--input", required=True)
    c.add_argument("--output", required=True)
    c.add_argument("--group", required=True)
    c.add_argument("--batch", type=int, default=1024)
    m = sub.add_parser("measure")
    m.add_argument("--brokers", required=True)
    m.add_argument("--topic", required=True)
    m.add_argument("--n", type=int, required=True)
    m.add_argument("--timeout", type=float, default=600)
    m.add_argument("--warmup", type=float, default=0.0, help="fraction of first arrivals left out of latency")
    m.add_argument("--per-message", action="store_true", help="poll() message by message (latency runs)")
    m.add_argument("--fetch-wait-ms", type=int, default=10, help="the reader's fetch.wait.max.ms (Tansu holds every fetch this long)")
    k = sub.add_parser("check")
    k.add_argument("--model", required=True)
    k.add_argument("--brokers", required=True)
    k.add_argument("--input", required=True)
    k.add_argument("--scores", required=True)
    k.add_argument("--n", type=int, default=2000)
    k.add_argument("--total", type=int, required=True)
    a = ap.parse_args()
    try:
        {"consume": consume, "measure": measure, "check": check}[a.mode](a)
    except KafkaException as e:
        sys.exit(f"kafka: {e}")


if __name__ == "__main__":
    main()
