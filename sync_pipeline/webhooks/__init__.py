"""Near real time through webhooks (issue 15): the receiver (``app``), its spool, the
subscriptions (``subscriptions``), the sensor that turns events into runs (``sensor``) and
the targeted read of the changed records (``targeted``)."""
