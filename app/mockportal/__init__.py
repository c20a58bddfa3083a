"""The mock National Public Service Portal: strict, stateful, fault-injectable, and able to
grade its clients. A separate application: the service never imports it."""
