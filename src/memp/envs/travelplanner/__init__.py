"""TravelPlanner: the official sandbox database, tools, query model, evaluator and generator."""
