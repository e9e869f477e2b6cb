"""Both models reach a new device by IoT job, load, pass their health checks and serve.

A device with nothing deployed joins the fleet. The cloud deploys the classifier, then the UNet;
each job ends SUCCEEDED only once its model is loaded and healthy, models_config.json names both,
and the continuous inference loop produces a verdict and a mask.
"""

from __future__ import annotations

from simulators.harness.harness import Harness

NAME = "first-deployment"
PROFILES = ("fake", "local")  # aws: once the device side of the aws profile lands (issue 10)


def run(h: Harness) -> None:
    device = h.start_device()
    h.check("a new device serves nothing", h.served(device) == {})
    for model in ("img-classification", "unet"):
        job = h.deploy(model, "1")
        h.check_job(f"{model} 1 is deployed", job, "SUCCEEDED")
    h.check("both models serve", h.served(device) == {"img-classification": "1", "unet": "1"}, str(h.served(device)))
    config = device.config_file.load()
    h.check("models_config.json names both", {m.name: m.version for m in config.models} == h.served(device))

    def both_results() -> bool:
        result = device.latest_result()
        return result is not None and result.classification is not None and result.segmentation is not None

    h.eventually("inference gives a verdict and a mask", both_results)
