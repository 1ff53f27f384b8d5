from django.db import models


class Batch(models.Model):
    name = models.CharField(max_length=100)


class Item(models.Model):
    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="items")
    number = models.IntegerField()
