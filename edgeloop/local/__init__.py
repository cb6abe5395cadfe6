"""The local stack: moto in server mode, an embedded MQTT broker standing in for IoT Core, and a
Greengrass stand-in, so the whole loop runs on one machine with no AWS account and no Docker."""
