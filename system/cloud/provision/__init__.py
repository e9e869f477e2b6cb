"""`edgesim provision`: the AWS resources of one project and one device, and the device's bundle.

`plan` says what should exist (a pure value), `apply` makes it exist (idempotent), `destroy`
removes it, `bundle` writes the device's files, `session` builds the boto3 clients and translates
their errors. See docs/provisioning.md.
"""
