stack {}
