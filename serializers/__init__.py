"""Serializer plugins, one folder per workflow kind; ``serializers.registry`` lists them."""
