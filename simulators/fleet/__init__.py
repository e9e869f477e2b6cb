"""Fleets of light devices: the device's OTA code on a simulated model runtime, many per process.

`runtime` (the simulated model runtime), `packages` (light model packages), `jobs_requests` (the
IoT Jobs device API with callbacks instead of blocking calls), `light_driver` (the OTA driver as
events on a clock), `light_device` (one device: its thing, bus, folder, journal), `fleet` (N of
them on one simulated cloud), `progress` (a status line for long runs).
"""
