"""Tests that drive a real Chromium (Playwright) against the web UI; they skip when Chromium is missing."""
