"""The device's local web UI and JSON API: a Flask app over a `DeviceView`, served by waitress.

`create_app(view)` builds the app (app.py); `WebServer(app).start()` serves it on a thread (server.py).
The page (templates/, static/) polls the JSON API and updates in place; all assets are local.
"""
