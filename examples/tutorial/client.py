"""Send the tutorial tasks to the running worker and print their results."""

from tasks import add, mult

results = [(f"add({i}, {i})", add.delay(i, i)) for i in range(3)]
results += [(f"mult({i}, 7)", mult.delay(i, 7)) for i in range(3)]
for label, result in results:
    print(f"{label} = {result.get(timeout=30)}   [{result.id} {result.state}]")
