"""The RabbitMQ broker through py-amqp: ``transport`` (AMQPTransport) and its parts."""
