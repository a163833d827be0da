-- What an attempt sent, when it was not the record or the published message
-- as the delivery log rebuilds them (a rendered template, a batch, a
-- notification's text); bounded like the response excerpt. NULL otherwise,
-- so a plain delivery writes nothing more.
ALTER TABLE deliveries ADD COLUMN last_sent TEXT;
ALTER TABLE delivery_attempts ADD COLUMN sent TEXT;
