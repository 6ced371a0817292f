"""A xiaozhi-style device on MQTT, for tests/devices.rs: paho-mqtt (a real MQTT 3.1.1 client)
with one connection, as the firmware has. It subscribes to its own topic and to another
device's, says hello, speaks one utterance, then publishes on another device's topic.
Prints one JSON object with what happened."""

import json
import sys
import threading
import time

import paho.mqtt.client as mqtt

host, port, client_id, username, password, up, down, other_up, other_down = sys.argv[1:10]

got = []
granted = {}
events = {"connected": threading.Event(), "subscribed": threading.Event(),
          "hello": threading.Event(), "stop": threading.Event(), "gone": threading.Event()}
result = {"connack": None}


def on_connect(client, userdata, flags, reason_code, properties):
    result["connack"] = str(reason_code)
    events["connected"].set()


def on_subscribe(client, userdata, mid, reason_codes, properties):
    granted[mid] = [rc.value for rc in reason_codes]
    if len(granted) == 2:
        events["subscribed"].set()


def on_message(client, userdata, msg):
    m = json.loads(msg.payload)
    m["_topic"] = msg.topic
    got.append(m)
    if m.get("type") == "hello":
        events["hello"].set()
    if m.get("type") == "tts" and m.get("state") == "stop":
        events["stop"].set()


def on_disconnect(client, userdata, flags, reason_code, properties):
    events["gone"].set()


c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
c.username_pw_set(username, password)
c.on_connect, c.on_subscribe, c.on_message, c.on_disconnect = on_connect, on_subscribe, on_message, on_disconnect
c.connect(host, int(port), keepalive=30)
c.loop_start()
out = {}
try:
    if not events["connected"].wait(5):
        raise SystemExit("no connack")
    out["connack"] = result["connack"]
    if result["connack"] != "Success":
        raise SystemExit(0)
    own = c.subscribe(down, qos=0)[1]
    foreign = c.subscribe(other_down, qos=0)[1]
    events["subscribed"].wait(5)
    out["own_granted"] = granted.get(own)
    out["foreign_granted"] = granted.get(foreign)
    c.publish(up, json.dumps({"type": "hello", "version": 3, "transport": "mqtt",
                              "features": {"mcp": False},
                              "audio_params": {"format": "opus", "sample_rate": 16000,
                                               "channels": 1, "frame_duration": 60}}), qos=1)
    out["hello"] = events["hello"].wait(5)
    c.publish(up, json.dumps({"type": "listen", "state": "detect", "text": "hi over mqtt"}), qos=0)
    out["spoke"] = events["stop"].wait(15)
    # Another device's topic: the endpoint ends this connection.
    c.publish(other_up, json.dumps({"type": "listen", "state": "detect", "text": "pwned"}), qos=0)
    out["disconnected_after_foreign_publish"] = events["gone"].wait(5)
finally:
    out["messages"] = got
    print(json.dumps(out))
    sys.stdout.flush()
    c.loop_stop()
